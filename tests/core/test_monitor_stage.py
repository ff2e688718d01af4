"""The monitor stage in a project: stored profiles, checks of served windows, model quality,
signals and alerts, `opsloop monitor profile | check | watch`.

The registry, the warehouse and the prediction log are test plugins answering the real
hooks (model_store with provenance, read_dataset, read_predictions) over a real
scikit-learn model; the end-to-end run with MLflow and the FastAPI server is in
tests/e2e/test_monitor_loop.py.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import typer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from typer.testing import CliRunner

from opsloop import hookimpl, monitor, registry
from opsloop.cli import commands_monitor, context
from opsloop.errors import IntegrityError, OpsloopError
from opsloop.interfaces import Dataset, TrainedModel
from opsloop.profile_store import load_profile, profile_records
from opsloop.project import Project
from opsloop.records import Alert, ModelVersionRef, ProfileRecord, Signal
from opsloop.testing import make_project
from opsloop.watch import check_model, served_models, watch

MODEL = "bc"


@cache
def data() -> pd.DataFrame:
    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    return pd.read_csv(io.StringIO(text)).sample(frac=1, random_state=0).reset_index(drop=True)


def features() -> list[str]:
    return [c for c in data().columns if c != "target"]


@cache
def model() -> Any:
    train = data().iloc[:400]
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(
        train[features()], train["target"]
    )


class Registry:
    """A model_store with versions, aliases, loads and the training-data provenance."""

    name = "memory"
    capabilities = frozenset({"governance"})  # it keeps provenance (the training data)

    def __init__(self) -> None:
        self.refs: dict[str, ModelVersionRef] = {}
        self.lineage: dict[str, Mapping[str, Any]] = {}
        self.aliases: dict[str, str] = {}
        self.models: dict[str, Any] = {}

    @hookimpl
    def model_store(self, project: Any) -> Registry:
        return self

    def register(self, name: str, trained: TrainedModel, *, lineage: Mapping[str, Any]) -> Any:
        version = str(len(self.refs) + 1)
        self.models[version] = trained.model
        self.lineage[version] = dict(lineage, target=trained.target)
        self.refs[version] = ModelVersionRef(
            name=name, version=version, uri=f"models:/{name}/{version}", store=self.name,
            metrics=dict(trained.metrics),
            signature={"inputs": [{"name": f, "type": "double"} for f in trained.features]},
        )  # fmt: skip
        return self.refs[version]

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        previous = self.aliases.get(alias)
        self.aliases[alias] = version
        return previous

    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        key = alias_or_version.lstrip("@")
        if name != MODEL:
            raise OpsloopError(f"no model named '{name}'")
        if key == "latest" and self.refs:
            key = max(self.refs, key=int)
        version = self.aliases.get(key, key)
        if version not in self.refs:
            raise OpsloopError(f"model '{name}' has no version or alias '{key}'")
        return self.refs[version]

    def load(self, ref: ModelVersionRef) -> Any:
        return self.models[ref.version]

    def list_models(self) -> list[str]:
        return [MODEL] if self.refs else []

    def list_versions(self, name: str) -> list[ModelVersionRef]:
        return [self.refs[v] for v in sorted(self.refs, key=int)]

    def provenance(self, ref: ModelVersionRef) -> dict[str, Any]:
        return {"training_data": dict(self.lineage[ref.version])}

    def verify(self, ref: ModelVersionRef) -> list[str]:
        return []  # the models live in memory: no artifact files to re-hash

    def get_metadata(self, name: str, version: str | None = None) -> dict[str, str]:
        return {}

    def set_metadata(self, name: str, version: str | None, values: Mapping[str, str]) -> None:
        raise OpsloopError("this test registry keeps no metadata")

    def import_model(self, source: str, *, allow_pickle: bool = False) -> Any:
        raise OpsloopError("this test registry imports nothing")


class Tables:
    """read_dataset for raw.train; read_predictions over a log frame the test appends to."""

    def __init__(self) -> None:
        self.log = pd.DataFrame()
        self.quality: list[Any] = []
        self.drift: list[Any] = []

    @hookimpl
    def read_dataset(self, project: Any, table: str, dataset: str) -> Dataset | None:
        if (dataset, table) != ("raw", "train"):
            return None
        return Dataset(name=table, frame=data().iloc[:400], load_ids=["l1"], content_hash="h1")

    @hookimpl
    def read_predictions(self, project: Any, model: str, since: str | None) -> Any:
        if model != MODEL:
            return None
        frame = self.log
        if since is not None and len(frame):
            frame = frame[frame["logged_at"] >= pd.Timestamp(since)]
        return frame.reset_index(drop=True)

    @hookimpl
    def after_quality_check(self, project: Any, model: str, result: Any) -> None:
        self.quality.append(result)

    @hookimpl
    def after_drift_check(self, project: Any, model: str, result: Any) -> None:
        self.drift.append(result)

    def serve(self, rows: pd.DataFrame, *, version: str = "1", labels: Any = None,
              age: timedelta = timedelta(0)) -> None:  # fmt: skip
        """Log ``rows`` as scored by the model (``labels``: the feedback, None: none yet)."""
        frame = rows[features()].reset_index(drop=True).copy()
        frame["prediction"] = model().predict(frame[features()].fillna(0.0))  # as imputed
        frame["request_id"] = [f"r{len(self.log) + i}" for i in range(len(frame))]
        frame["row"] = 0
        frame["model_version"] = version
        frame["role"] = "champion"
        frame["logged_at"] = pd.Timestamp(datetime.now(UTC) - age)
        frame["latency_ms"] = 1.0
        frame["label"] = None if labels is None else list(labels)
        self.log = pd.concat([self.log, frame], ignore_index=True)


def trained() -> TrainedModel:
    return TrainedModel(
        model=model(), flavor="sklearn", features=features(), target="target",
        metrics={"accuracy": 0.96, "f1": 0.97},
    )  # fmt: skip


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Project, Tables]:
    tables = Tables()
    project = make_project(tmp_path / "p", Registry(), tables)
    ref = registry.register_model(project, MODEL, trained(), {"dataset": "raw.train"})
    registry.set_alias(project, MODEL, "champion", ref.version)
    return project, tables


def test_registration_profiles_the_training_data(setup: tuple[Project, Tables]) -> None:
    project, _ = setup
    (record,) = profile_records(project, MODEL)
    assert (record.version, record.rows, record.prediction) == ("1", 400, True)
    assert record.columns == features() and record.source["table"] == "raw.train"
    profile = load_profile(project, MODEL, "1")
    assert profile.prediction is not None and profile.prediction.discrete
    entry = next(e for e in project.audit.entries() if e["action"] == "monitor.profile")
    assert entry["target"] == f"{MODEL}/1" and entry["after"]["sha256"] == record.sha256
    assert (project.home / record.path).is_file()


def test_registration_without_training_data_or_with_a_broken_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Tables):
        @hookimpl
        def read_dataset(self, project: Any, table: str, dataset: str) -> Dataset | None:
            raise OpsloopError("the warehouse is locked")

    project = make_project(tmp_path / "p", Registry(), Broken())
    registry.register_model(project, MODEL, trained(), {"load_ids": ["x"]})
    assert not caplog.records  # no training data recorded: nothing to profile, nothing said
    ref = registry.register_model(project, MODEL, trained(), {"dataset": "raw.train"})
    assert ref.version == "2"  # registered either way
    assert profile_records(project, MODEL) == []
    (warning,) = caplog.records
    assert warning.levelname == "WARNING" and "no reference profile for bc/2" in warning.message
    assert "the warehouse is locked" in warning.message and "opsloop monitor profile" in (
        warning.message
    )
    actions = [e["action"] for e in project.audit.entries()]
    assert actions == ["model.register", "model.register"]  # a failed attempt changed nothing
    with pytest.raises(OpsloopError, match="no reference profile for model 'bc' version 2"):
        load_profile(project, MODEL, "2")
    project.config.monitor.profile_on_register = False
    registry.register_model(project, MODEL, trained(), {"dataset": "raw.train"})
    assert len(caplog.records) == 1  # switched off: not even tried


def test_a_changed_or_missing_profile_is_refused(setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    (record,) = profile_records(project, MODEL)
    path = project.home / record.path
    text = json.loads(path.read_text())
    text["columns"]["mean_radius"]["counts"][3] += 1
    path.write_text(json.dumps(text))
    tables.serve(data().iloc[400:])
    with pytest.raises(IntegrityError, match=r"was changed: .* has SHA-256 .* rebuild it"):
        check_model(project, MODEL)
    path.unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        load_profile(project, MODEL, "1")


def test_served_window_without_drift_then_with_drift(setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    holdout = data().iloc[400:]
    tables.serve(holdout, age=timedelta(hours=3))  # outside the default 1h window
    tables.serve(holdout)
    quiet = check_model(project, MODEL)
    assert quiet.rows == len(holdout) and quiet.window == "last 1h"
    assert quiet.drift is not None and not quiet.drift.result.drifted
    assert quiet.signals == [] and quiet.drift.result.profile_id
    assert quiet.quality is not None and "0 labelled row(s)" in quiet.quality.skipped
    shifted = holdout.copy()
    shifted[features()[:10]] *= 1.6
    tables.serve(shifted)
    found = check_model(project, MODEL, rows=len(shifted))
    result = found.drift.result if found.drift else None
    assert result is not None and result.drifted and result.window == f"last {len(shifted)} rows"
    assert (
        set(result.drifted_features) <= set(features()[:10]) and len(result.drifted_features) >= 6
    )
    assert result.model_version == "1"
    (signal,) = found.signals
    assert signal.type == "drift" and signal.data["model_version"] == "1"
    assert signal.data["features"][0]["effect"]  # effect sizes travel with the signal
    assert [a.rule for a in project.records.list(Alert)] == ["model-drift"]
    assert len(tables.drift) == 2 and tables.drift[-1] is result


def test_too_few_rows_skip_the_drift_check(setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    tables.serve(data().iloc[400:410])
    found = check_model(project, MODEL)
    assert found.drift is None and "10 row(s) in the window" in found.skipped
    assert "min_rows 30" in found.skipped
    with pytest.raises(OpsloopError, match="--window: 'soon' is not a duration"):
        check_model(project, MODEL, window="soon")


def test_other_versions_rows_are_not_in_the_window(setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    tables.serve(data().iloc[400:] * 3, version="7")  # another version's (odd) traffic
    tables.serve(data().iloc[400:])
    found = check_model(project, MODEL)
    assert found.rows == 169 and found.drift and not found.drift.result.drifted


def test_data_quality_findings_become_a_signal_and_an_alert(
    setup: tuple[Project, Tables],
) -> None:
    project, tables = setup
    rows = data().iloc[400:].copy()
    rows.loc[rows.sample(frac=0.4, random_state=1).index, "mean_area"] = np.nan
    tables.serve(rows)
    found = check_model(project, MODEL)
    types = {q.type for q in found.drift.result.quality} if found.drift else set()
    assert types == {"missing_rate"}
    (signal,) = found.signals
    assert signal.type == "data_quality" and signal.severity == "warning"
    assert "mean_area" in signal.summary and signal.data["findings"][0]["column"] == "mean_area"
    assert "data-quality" in [a.rule for a in project.records.list(Alert)]


def test_hook_after_quality_check_sees_feedback_quality(setup: tuple[Project, Tables]) -> None:
    """Model quality from feedback labels; after_quality_check gets every comparison."""
    project, tables = setup
    holdout = data().iloc[400:]
    tables.serve(holdout, labels=holdout["target"])
    good = check_model(project, MODEL)
    assert good.quality is not None and not good.quality.skipped and good.quality.rows == 169
    assert good.quality.task == "classification" and good.quality.degraded == []
    assert good.quality.baseline == {"accuracy": 0.96, "f1": 0.97}
    assert tables.quality[-1] is good.quality
    wrong = 1 - holdout["target"].to_numpy()
    wrong[:40] = holdout["target"].to_numpy()[:40]  # most labels now disagree with the model
    tables.serve(holdout, labels=wrong)
    bad = check_model(project, MODEL, rows=169)
    assert bad.quality is not None and set(bad.quality.degraded) == {"accuracy", "f1"}
    change = next(c for c in bad.quality.changes if c.metric == "accuracy")
    assert change.value < 0.5 and change.p_value is not None and change.p_value < 0.05
    signal = bad.quality_signal
    assert signal is not None and signal.type == "model_quality" and signal in bad.signals
    assert "accuracy" in signal.summary and "model-quality" in [
        a.rule for a in project.records.list(Alert)
    ]


def test_a_few_unlucky_labels_raise_nothing(tmp_path: Path) -> None:
    tables = Tables()
    project = make_project(
        tmp_path / "p", Registry(), tables, config="[monitor]\nmin_labels = 20\n"
    )
    registry.register_model(project, MODEL, trained(), {"dataset": "raw.train"})
    rows = data().iloc[400:430]
    labels = rows["target"].to_numpy().copy()
    labels[:2] = 1 - labels[:2]  # 2 of 30 wrong: accuracy drops past 0.05, but by luck
    tables.serve(rows, labels=labels)
    found = check_model(project, MODEL, version="1")
    assert found.quality is not None and found.quality.degraded == []
    change = next(c for c in found.quality.changes if c.metric == "accuracy")
    assert change.change > 0.05 and change.p_value is not None and change.p_value > 0.05


def test_a_profile_needs_a_detector_that_reads_profiles(setup: tuple[Project, Tables]) -> None:
    project, _ = setup

    class Frames:
        name = "frames-only"

        def detect(self, reference: Any, current: Any, **_: Any) -> Any:
            raise AssertionError("not called")

    class Plugin:
        @hookimpl
        def register_drift_detectors(self, project: Any) -> list[Any]:
            return [Frames()]

    project.plugins.register(Plugin())
    profile = load_profile(project, MODEL, "1")
    with pytest.raises(OpsloopError, match="'frames-only' needs the reference data itself"):
        monitor.run_check(project, MODEL, profile, data().iloc[400:], detector="frames-only")


def test_watch_checks_every_served_model_until_stopped(setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    tables.serve(data().iloc[400:])
    assert [r.version for r in served_models(project)] == ["1"]
    seen: list[tuple[str, Any, str]] = []
    assert watch(project, interval=60, once=True, report=lambda *a: seen.append(a)) == 1
    assert [(m, e) for m, _, e in seen] == [(MODEL, "")] and seen[0][1].drift is not None
    stop = threading.Event()

    def report(model: str, found: Any, error: str) -> None:
        seen.append((model, found, error))
        if len(seen) >= 3:
            stop.set()

    thread = threading.Thread(
        target=watch, kwargs={"project": project, "interval": 0.05, "report": report, "stop": stop}
    )
    thread.start()
    thread.join(timeout=60)
    assert not thread.is_alive() and len(seen) == 3
    errors: list[str] = []
    watch(project, interval=1, once=True, models=["nope"], report=lambda m, f, e: errors.append(e))
    assert errors == ["no model named 'nope'"]


# ---------------------------------------------------------------------------- CLI
@pytest.fixture
def cli(setup: tuple[Project, Tables]) -> typer.Typer:
    project, _ = setup
    app = typer.Typer()
    app.command("noop")(lambda: None)
    commands_monitor.register_cli(app)
    context.set_plugins(project.plugins)
    context.set_project_path(project.root)
    yield app
    context.set_project_path(None)


def run(app: typer.Typer, *args: str) -> Any:
    return CliRunner().invoke(
        app, ["monitor", *args], catch_exceptions=False, env={"COLUMNS": "160"}
    )


def test_cli_check_exit_codes_and_json(cli: typer.Typer, setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    holdout = data().iloc[400:]
    tables.serve(holdout)
    quiet = run(cli, "check", MODEL)
    assert quiet.exit_code == 0, quiet.output
    assert "no drift: 0 of 30 features drifted" in quiet.output
    assert "bc version 1, last 1h: 169 rows" in quiet.output
    shifted = holdout.copy()
    shifted[features()] *= 1.6
    tables.serve(shifted)
    found = run(cli, "check", MODEL, "--rows", "169", "--json")
    assert found.exit_code == 1, found.output
    body = json.loads(found.output)
    assert body["drift"]["drifted"] and body["window"] == "last 169 rows"
    assert body["signals"][0]["type"] == "drift"
    assert project.records.get(body["signals"][0]["id"]).kind == "signal"
    table = run(cli, "check", MODEL, "--rows", "169", "--all")
    assert table.exit_code == 1 and "DRIFT:" in table.output and "adj. p" in table.output
    assert "rule: a feature drifts when" in table.output


def test_cli_check_against_a_file_and_bad_options(
    cli: typer.Typer, setup: tuple[Project, Tables], tmp_path: Path
) -> None:
    path = tmp_path / "window.csv"
    data().iloc[400:].drop(columns="target").to_csv(path, index=False)
    result = run(cli, "check", MODEL, "--against", str(path))
    assert result.exit_code == 0, result.output
    assert str(path) in result.output
    with pytest.raises(OpsloopError, match="exclude each other"):
        run(cli, "check", MODEL, "--window", "1h", "--rows", "5")
    with pytest.raises(OpsloopError, match="leave out --window"):
        run(cli, "check", MODEL, "--against", str(path), "--rows", "5")


def test_cli_profile_from_a_file(
    cli: typer.Typer, setup: tuple[Project, Tables], tmp_path: Path
) -> None:
    project, _ = setup
    path = tmp_path / "reference.parquet"
    data().iloc[:300].to_parquet(path)
    result = run(cli, "profile", MODEL, "--from", str(path))
    assert result.exit_code == 0, result.output
    assert "300 rows, 30 features (30 numeric, 0 categorical), prediction" in result.output
    records = profile_records(project, MODEL, "1")
    assert len(records) == 2 and records[-1].source["kind"] == "file"
    assert f"sha256: {records[-1].sha256}" in result.output
    assert load_profile(project, MODEL, "1").rows == 300  # the newest profile is used


def test_cli_watch_once(cli: typer.Typer, setup: tuple[Project, Tables]) -> None:
    project, tables = setup
    shifted = data().iloc[400:].copy()
    shifted[features()] *= 1.6
    tables.serve(shifted)
    result = run(cli, "watch", "--once")
    assert result.exit_code == 1, result.output
    assert "bc v1 (last 1h, 169 rows): DRIFT" in result.output
    assert "done: 1 check(s), 1 with findings, 0 error(s)" in result.output
    assert len(project.records.list(Signal)) == 1
    with pytest.raises(OpsloopError, match="--interval: 'often' is not a duration"):
        run(cli, "watch", "--interval", "often", "--once")


def test_profile_record_round_trips_through_the_store(setup: tuple[Project, Tables]) -> None:
    project, _ = setup
    (record,) = project.records.list(ProfileRecord)
    assert project.records.get(record.id) == record


# ---------------------------------------------------------------------------- scheduled
def test_scheduled_monitor_jobs_check_one_model_and_every_served_model(
    setup: tuple[Project, Tables],
) -> None:
    from opsloop.records import ScheduleRun
    from opsloop.schedule import add_schedule, run_due

    project, tables = setup
    shifted = data().iloc[400:].copy()
    shifted[features()[:10]] *= 1.6
    tables.serve(shifted)
    t0 = datetime.now(UTC) - timedelta(hours=2)
    with pytest.raises(OpsloopError, match="monitor jobs take the parameters window"):
        add_schedule(project, "x", cron="@hourly", job=f"monitor:{MODEL}", parameters={"w": "1"})
    with pytest.raises(OpsloopError, match=r"monitor:\* \(every served model\) takes no"):
        add_schedule(project, "x", cron="@hourly", job="monitor:*", parameters={"window": "1h"})
    add_schedule(project, "one", cron="@hourly", job=f"monitor:{MODEL}",
                 parameters={"window": "30m"}, now=t0)  # fmt: skip
    add_schedule(project, "all", cron="@hourly", job="monitor:*", now=t0)
    add_schedule(project, "gone", cron="@hourly", job="monitor:nope", now=t0)
    runs = {r.schedule: r for r in run_due(project)}
    assert set(runs) == {"one", "all", "gone"}
    one, every, gone = runs["one"], runs["all"], runs["gone"]
    assert one.status == "succeeded" and one.summary.startswith(f"{MODEL} v1 (last 30m, ")
    assert one.summary.endswith("finding(s)") and one.missed == 1
    drift = project.records.get(one.record_id or "")
    assert isinstance(drift, Signal) and drift.type == "drift"
    assert every.status == "succeeded" and every.summary == "1 model(s) checked, 1 with findings"
    # a model that is not there: a failed run, and a signal for the respond stage
    assert gone.status == "failed" and "no model named 'nope'" in (gone.error or "")
    failed = [s for s in project.records.list(Signal) if s.type == "schedule_failed"]
    assert [s.subject for s in failed] == ["gone"]
    assert len(project.records.list(ScheduleRun)) == 3
