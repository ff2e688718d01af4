"""Every opsloop hook specification, grouped by stage of the loop.

Conventions (see docs/hooks.md):

* ``register_*`` hooks collect lists; the core collects them once per project with one rule
  for equal names (:mod:`opsloop.registrations`): the plugin called first keeps a name.
* ``before_*`` / ``after_*`` / ``on_*_error`` wrap a stage's work; their return is ignored.
* ``firstresult=True`` hooks pick one backend: the first plugin that returns something
  other than ``None`` wins, and the docstring says so.
* Hook order: the last registered plugin is called first. opsloop registers built-ins
  first, then entry-point plugins, then the project's local plugins, so a project can
  override a vendor which can override a built-in. ``[plugins] order`` in opsloop.toml
  names plugins to call first, in that order; ``tryfirst``/``trylast`` still apply.

Every argument is passed by name, so an implementation takes only the ones it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import pandas as pd
    import typer

    from opsloop.interfaces import (
        AlertRule,
        CheckResult,
        DataContract,
        Dataset,
        DriftDetector,
        DriftResult,
        JobKind,
        ModelStore,
        Notifier,
        NotifierType,
        PluginInfo,
        PredictContext,
        PredictionBatch,
        RunbookSpec,
        ScaleOut,
        Scanner,
        ScanResult,
        ServerHandle,
        SourceSpec,
        TrainedModel,
    )
    from opsloop.project import Project
    from opsloop.quality import QualityResult
    from opsloop.records import LoadRecord, ModelVersionRef, Record, RunbookRun

hookspec = pluggy.HookspecMarker("opsloop")


# ============================================================================ core
@hookspec
def describe_plugin() -> PluginInfo:  # type: ignore[empty-body]
    """Return this plugin's PluginInfo: name, stage, settings model; import no vendor SDK."""


@hookspec
def register_commands(cli: typer.Typer) -> None:
    """Add sub-commands to the ``opsloop`` CLI (``cli.command()`` or ``cli.add_typer()``)."""


@hookspec
def startup(project: Project) -> None:
    """Run once when a project is opened, after every plugin is registered."""


@hookspec
def register_checks(project: Project) -> list[CheckResult]:  # type: ignore[empty-body]
    """Return self-check results for ``opsloop doctor``; never raise, report instead."""


@hookspec
def on_record(project: Project, record: Record) -> None:
    """Called after a record (signal, alert, incident, load, run...) is stored."""


# ============================================================================ ingest
@hookspec
def register_sources(project: Project) -> list[SourceSpec]:  # type: ignore[empty-body]
    """Return sources that ``opsloop ingest`` can load."""


@hookspec
def register_data_contracts(project: Project) -> list[DataContract]:  # type: ignore[empty-body]
    """Return data contracts that sources can name to be checked during the load."""


@hookspec(firstresult=True)
def load_source(project: Project, source: SourceSpec) -> LoadRecord | None:
    """Load ``source`` into the warehouse and return the LoadRecord.

    Stops at the first non-None result: return None when this plugin does not handle
    ``source.kind``.
    """


@hookspec
def before_load(project: Project, source: SourceSpec) -> None:
    """Called before a source is loaded; raise OpsloopError to refuse the load."""


@hookspec
def after_load(project: Project, load: LoadRecord) -> None:
    """Called after a load finished, empty loads included."""


@hookspec
def on_load_error(project: Project, source: SourceSpec, error: BaseException) -> None:
    """Called when a load failed; the error is re-raised afterwards."""


@hookspec(firstresult=True)
def read_dataset(project: Project, table: str, dataset: str) -> Dataset | None:
    """Read a loaded table back with its lineage (load ids); first non-None result wins."""


# ============================================================================ registry
@hookspec(firstresult=True)
def train_model(
    project: Project, data: Dataset, target: str, params: dict[str, Any]
) -> TrainedModel | None:
    """Train a model on ``data`` predicting ``target``; first non-None result wins."""


@hookspec(firstresult=True)
def model_store(project: Project) -> ModelStore | None:
    """Return the model registry backend; the first plugin that returns one wins."""


@hookspec
def before_register(project: Project, name: str, trained: TrainedModel) -> None:
    """Called before a model version is registered; raise OpsloopError to refuse."""


@hookspec
def after_register(project: Project, ref: ModelVersionRef) -> None:
    """Called after a new model version is registered."""


@hookspec
def register_promotion_gates(project: Project) -> list[Any]:  # type: ignore[empty-body]
    """Return promotion gates: callables ``(ref, alias) -> CheckResult`` run before a move."""


@hookspec
def after_promote(project: Project, ref: ModelVersionRef, alias: str, previous: str | None) -> None:
    """Called after an alias moved to ``ref`` (``previous``: the version it left)."""


# ============================================================================ serve
@hookspec(firstresult=True)
def start_server(
    project: Project, ref: ModelVersionRef, host: str, port: int
) -> ServerHandle | None:
    """Start a scoring server for ``ref`` and return its handle; first non-None wins."""


@hookspec
def before_predict(context: PredictContext) -> None:
    """Called before a prediction; may validate or raise OpsloopError to refuse it."""


@hookspec
def after_predict(context: PredictContext) -> None:
    """Called after a prediction with outputs and latency; keep it fast, off the hot path."""


@hookspec
def after_predict_batch(batch: PredictionBatch) -> None:
    """Called after the response with many scored rows at once; monitors belong here."""


@hookspec
def on_predict_error(context: PredictContext, error: BaseException) -> None:
    """Called when a prediction raised."""


@hookspec(firstresult=True)
def read_predictions(project: Project, model: str, since: str | None) -> pd.DataFrame | None:
    """Return logged prediction inputs for ``model`` (newest window); first non-None wins.

    The frame holds the input feature columns plus ``request_id``, ``model_version`` and
    ``logged_at``; ``since`` is an ISO timestamp lower bound or None for everything.
    """


@hookspec(firstresult=True)
def score_batch(
    project: Project, ref: ModelVersionRef, input_path: Path, output_path: Path
) -> int | None:
    """Score a file or table in chunks; return rows scored. First non-None result wins."""


@hookspec(firstresult=True)
def scale_out(project: Project) -> ScaleOut | None:
    """Return the configured cluster engine for batch scoring and profiles; first non-None wins.

    None (the default) keeps the work in this process.
    """


# ============================================================================ monitor
@hookspec
def register_drift_detectors(project: Project) -> list[DriftDetector]:  # type: ignore[empty-body]
    """Return drift detectors; ``[monitor] detector`` in config picks one by name.

    A detector with a ``check(profile, current)`` method can also work from a stored
    reference profile (see ``opsloop.interfaces.ProfileDriftDetector``).
    """


@hookspec
def after_drift_check(project: Project, model: str, result: DriftResult) -> None:
    """Called after a drift check, drifted or not, with per-feature tests and effect sizes."""


@hookspec
def after_quality_check(project: Project, model: str, result: QualityResult) -> None:
    """Called after a window's model quality was compared with the registered metrics."""


@hookspec
def register_metrics(project: Project) -> list[Any]:  # type: ignore[empty-body]
    """Return Prometheus collectors (objects with ``collect()``) every /metrics also serves.

    A serving app's /metrics and a metrics exporter register them beside their own; the
    core imports no Prometheus client, so the objects are opaque to it.
    """


# ============================================================================ guard
@hookspec
def register_scanners(project: Project) -> list[Scanner]:  # type: ignore[empty-body]
    """Return scanners run over prompts, retrieved chunks, tool outputs and model outputs."""


@hookspec
def after_scan(project: Project, target: str, results: list[ScanResult]) -> None:
    """Called after a text went through every scanner, with each scanner's result."""


# ============================================================================ respond
@hookspec
def register_alert_rules(project: Project) -> list[AlertRule]:  # type: ignore[empty-body]
    """Return alert rules that turn signals into alerts (and incidents)."""


@hookspec
def register_notifiers(project: Project) -> list[Notifier]:  # type: ignore[empty-body]
    """Return notifiers that deliver alerts to people."""


@hookspec
def register_notifier_types(project: Project) -> list[NotifierType]:  # type: ignore[empty-body]
    """Return kinds of notifier that ``[respond.notify.<name>] type = ...`` can configure."""


@hookspec
def register_runbooks(project: Project) -> list[RunbookSpec]:  # type: ignore[empty-body]
    """Return runbook notebooks that ``opsloop runbook run`` and alert rules can name."""


@hookspec(firstresult=True)
def execute_notebook(
    project: Project,
    input_path: Path,
    output_path: Path,
    parameters: dict[str, Any],
    timeout: float,
) -> Path | None:
    """Execute a notebook with parameters and write the executed copy; first non-None wins."""


@hookspec
def before_runbook(project: Project, runbook: RunbookSpec, parameters: dict[str, Any]) -> None:
    """Called before a runbook runs; raise OpsloopError to refuse (e.g. no approval)."""


@hookspec
def after_runbook(project: Project, run: RunbookRun) -> None:
    """Called after a runbook run finished, failed runs included."""


@hookspec
def register_job_kinds(project: Project) -> list[JobKind]:  # type: ignore[empty-body]
    """Return kinds of job that ``opsloop schedule add --job KIND:TARGET`` can schedule."""
