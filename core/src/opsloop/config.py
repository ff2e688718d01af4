"""Project configuration: ``opsloop.toml`` (or ``[tool.opsloop]`` in pyproject.toml).

A typed model with ``OPSLOOP_<SECTION>__<KEY>`` environment overrides. Unknown keys and
wrong types are one-line errors naming the key, the file and the expected type. Plugin
settings live in ``[plugin.<name>]`` tables and are checked by the plugin's own model.
"""

from __future__ import annotations

import os
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretBytes,
    SecretStr,
    ValidationError,
    field_validator,
)

from opsloop.config_files import CONFIG_FILE, env_overrides, find_config, read_toml
from opsloop.errors import ConfigError
from opsloop.redact import is_secret_key

__all__ = ["CONFIG_FILE", "Config", "find_config", "load_config", "validate_settings"]

M = TypeVar("M", bound=BaseModel)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ProjectSection(_Section):
    name: str = "opsloop-project"
    home: str = ".opsloop"  # relative to the config file's folder
    #: False: the home and all it holds are private to you (0700 folders, 0600 files);
    #: True: shared with the home's group (2770 / 0660), for a team on one machine
    share_group: bool = False


class WarehouseSection(_Section):
    path: str = "warehouse.duckdb"  # relative to the project home


class RecordsSection(_Section):
    path: str = "records.sqlite"  # operational records (signals, alerts, incidents, runs)


class AuditSection(_Section):
    path: str = "audit.jsonl"
    actor: str = ""  # default: $OPSLOOP_ACTOR, else the OS user
    #: the HMAC key sealing the log, kept outside the project (default: one key per log in
    #: ~/.config/opsloop/keys/; $OPSLOOP_AUDIT_KEY, hex, wins over both)
    key_file: str = ""


class PluginsSection(_Section):
    enabled: list[str] = Field(default_factory=list)  # allow-list; empty = all
    disabled: list[str] = Field(default_factory=list)
    paths: list[str] = Field(default_factory=list)  # folders of one-off *.py plugins
    order: list[str] = Field(default_factory=list)  # plugins called first, in this order


class MonitorSection(_Section):
    """``[monitor]``: the drift detector, its verdict rule, profiles and scheduled checks."""

    detector: str = "profile"  # drift detector by name; empty = the first registered
    # a feature drifts when its Benjamini-Hochberg adjusted p-value is <= alpha ...
    alpha: float = Field(default=0.05, gt=0, lt=1)
    # ... and one effect size reaches its threshold
    psi_threshold: float = Field(default=0.1, gt=0)
    js_threshold: float = Field(default=0.1, gt=0, le=1)
    wasserstein_threshold: float = Field(default=0.1, gt=0)  # in reference standard deviations
    # the dataset drifts when at least min_drifted_features features drifted and they are
    # at least drift_share of the features compared
    min_drifted_features: int = Field(default=1, ge=1)
    drift_share: float = Field(default=0.0, ge=0, le=1)
    # data quality: a missing-rate change at least this large (and significant) is a finding
    missing_rate_change: float = Field(default=0.05, gt=0, le=1)
    unseen_share: float = Field(default=0.01, gt=0, le=1)  # rows in never-seen categories
    psi_bins: int = Field(default=10, ge=2, le=100)  # most coarse bins for PSI/JS
    # reference profiles
    bins: int = Field(default=100, ge=2, le=1000)  # quantile bins per numeric feature
    max_categories: int = Field(default=100, ge=1, le=10_000)
    profile_on_register: bool = True  # profile the training data when a version is registered
    # checks of served traffic (`opsloop monitor check` / `watch`)
    alias: str = "champion"  # the served version of each model
    window: str = "1h"  # how far back a check reads the prediction log
    min_rows: int = Field(default=30, ge=1)  # fewer rows in a window: the check is skipped
    interval: str = "5m"  # `opsloop monitor watch`: time between rounds
    # model quality from feedback labels, against the version's registered metrics
    min_labels: int = Field(default=100, ge=1)
    quality_drop: float = Field(default=0.05, gt=0)  # accuracy, f1, roc_auc, r2, ... (absolute)
    quality_increase: float = Field(default=0.1, gt=0)  # log_loss, mae, rmse (relative)

    @field_validator("window", "interval")
    @classmethod
    def _duration(cls, value: str) -> str:
        from opsloop.durations import parse_duration

        parse_duration(value)  # raises ValueError with the accepted forms
        return value


class RetrainPolicy(_Section):
    """``[respond.retrain.<model>]``: when and how a model is retrained, canaried and promoted.

    See docs/retraining.md. Durations are written like ``"90s"``, ``"10m"``, ``"1h"``.
    """

    #: signal types that start a run: drift, data_quality, model_quality ("quality" is
    #: model_quality); [] runs only by hand (`opsloop retrain NAME`)
    triggers: list[str] = Field(default_factory=lambda: ["drift", "model_quality"])
    min_severity: Literal["info", "warning", "critical"] = "warning"
    training_data: str  # "dataset.table": the latest ingested data, read through read_dataset
    target: str = "target"
    params: dict[str, Any] = Field(default_factory=dict)  # passed to the train_model hook
    cooldown: str = "1h"  # no signal-started run within this of the last run's start
    background: bool = True  # a signal starts the run in a thread (False: inside the check)
    # the canary: the serving stage follows challenger_alias ([plugin.fastapi] canary_share)
    champion_alias: str = "champion"
    challenger_alias: str = "challenger"
    #: the challenger's share of traffic, written on its version as registry metadata
    #: ``canary_share`` (servers with a canary, [plugin.fastapi] canary_share > 0, use it);
    #: None: the servers' own share
    canary_share: float | None = Field(default=None, gt=0, le=1)
    canary_duration: str = "10m"  # the longest a canary runs before its verdict
    canary_min_requests: int = Field(default=200, ge=1)  # challenger requests for a verdict
    poll_seconds: float = Field(default=5.0, gt=0)  # how often the prediction log is read
    # success criteria, challenger vs champion over the canary window
    max_error_rate: float = Field(default=0.01, ge=0, le=1)  # failed (fallback) / requests
    max_latency_ratio: float | None = Field(default=3.0, gt=0)  # p95 vs the champion's p95
    min_agreement: float | None = Field(default=None, ge=0, le=1)  # same answer as champion
    max_quality_drop: float | None = Field(default=None, ge=0)  # accuracy (labels) vs champion
    min_labels: int = Field(default=50, ge=1)  # labelled rows per side to judge quality
    #: who approves the destructive steps (challenger, promote): the policy itself when
    #: true (recorded as approved by "policy:retrain/<model>"); false: a person must give
    #: `opsloop retrain NAME --approved-by WHO`, else those steps are dry runs
    auto_approve: bool = True
    #: serving apps to tell at once (POST /admin/reload, token from $OPSLOOP_ADMIN_TOKEN);
    #: without them each replica notices the alias on its next poll
    reload_urls: list[str] = Field(default_factory=list)

    @field_validator("triggers")
    @classmethod
    def _triggers(cls, value: list[str]) -> list[str]:
        return [{"quality": "model_quality"}.get(t.strip(), t.strip()) for t in value]

    @field_validator("cooldown", "canary_duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        from opsloop.durations import parse_duration

        parse_duration(value)
        return value

    @field_validator("training_data")
    @classmethod
    def _dataset_table(cls, value: str) -> str:
        dataset, dot, table = value.partition(".")
        if not dot or not dataset.strip() or not table.strip():
            raise ValueError("training_data must name a table as 'dataset.table'")
        return value


class RespondSection(_Section):
    runbook_timeout: float = Field(default=600, gt=0)  # seconds per cell
    kernel: str = "python3"
    #: ``[respond.notify.<name>]`` tables: one notifier each, checked by opsloop.notify
    notify: dict[str, dict[str, Any]] = Field(default_factory=dict)
    retrain: dict[str, RetrainPolicy] = Field(default_factory=dict)  # [respond.retrain.<model>]
    #: who owns incidents: an alert rule's name or a signal type -> owner ("*": the default)
    owners: dict[str, str] = Field(default_factory=dict)
    #: how a rule's non-destructive runbook runs: in a detached process ("background"),
    #: in the process that raised the signal ("inline"), or not at all ("off")
    auto_run: Literal["background", "inline", "off"] = "background"
    #: seconds an automatic run may take in all (each cell also has ``runbook_timeout``)
    auto_run_timeout: float = Field(default=300, gt=0)


class GateSection(_Section):
    """``[registry.gate]``: the promotion gate, an evaluation on a named holdout table."""

    holdout: str  # "dataset.table", read through the read_dataset hook
    target: str = "target"
    #: metric -> minimum (maximum for the lower-is-better metrics: log_loss, mae, rmse)
    thresholds: dict[str, float] = Field(default_factory=dict)
    #: metric -> how much worse than the current holder of the alias a candidate may be
    max_regression: dict[str, float] = Field(default_factory=dict)
    #: the aliases this gate guards
    aliases: list[str] = Field(default_factory=lambda: ["champion"])

    @field_validator("holdout")
    @classmethod
    def _dataset_table(cls, value: str) -> str:
        dataset, dot, table = value.partition(".")
        if not dot or not dataset.strip() or not table.strip():
            raise ValueError("holdout must name a table as 'dataset.table'")
        return value

    @field_validator("max_regression")
    @classmethod
    def _margins(cls, value: dict[str, float]) -> dict[str, float]:
        for metric, margin in value.items():
            if margin < 0:
                raise ValueError(f"margin of '{metric}' must be 0 or more, got {margin}")
        return value


class ReadinessSection(_Section):
    """``[registry.readiness]``: which alias moves need a go readiness verdict."""

    required_for: list[str] = Field(default_factory=list)  # e.g. ["champion"]


class RegistrySection(_Section):
    """``[registry]``: promotion gate, readiness requirement, where model cards go."""

    gate: GateSection | None = None
    readiness: ReadinessSection = Field(default_factory=ReadinessSection)
    cards: str = "cards"  # model cards folder, relative to the project home


class Config(_Section):
    """The whole opsloop.toml."""

    project: ProjectSection = Field(default_factory=ProjectSection)
    warehouse: WarehouseSection = Field(default_factory=WarehouseSection)
    records: RecordsSection = Field(default_factory=RecordsSection)
    audit: AuditSection = Field(default_factory=AuditSection)
    plugins: PluginsSection = Field(default_factory=PluginsSection)
    monitor: MonitorSection = Field(default_factory=MonitorSection)
    respond: RespondSection = Field(default_factory=RespondSection)
    registry: RegistrySection = Field(default_factory=RegistrySection)
    plugin: dict[str, dict[str, Any]] = Field(default_factory=dict)  # [plugin.<name>]

    # Where the configuration came from; not a setting.
    source: str = Field(default="<defaults>", exclude=True)


_TYPE_NAMES = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "list_type": "a list",
    "dict_type": "a table",
    "model_type": "a table",
    "literal_error": "one of the allowed values",
}


def _shown(value: Any) -> str:
    """The offending value for an error line: secrets masked, at most 80 characters."""
    from opsloop.redact import redact

    text = repr(redact(value))
    return text if len(text) <= 80 else text[:77] + "..."


def _hidden(value: Any) -> str:
    """What an error line says instead of a secret field's value: its type only."""
    kind = {
        list: "a list",
        dict: "a table",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), f"a {type(value).__name__}")
    return f"{kind} (value hidden: secret setting)"


def _is_secret_type(annotation: Any) -> bool:
    """True when a field's type is, or contains, pydantic's SecretStr / SecretBytes."""
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret_type(arg) for arg in typing.get_args(annotation))


def secret_fields(model: type[BaseModel], prefix: str = "") -> frozenset[str]:
    """Dotted names of a settings model's secret fields, nested models included.

    A field is secret when its type is ``SecretStr``/``SecretBytes`` (or a union with
    one), when it says so (``Field(json_schema_extra={"secret": True})``), or when its
    name names a secret (``token``, ``password``... see :func:`opsloop.redact.is_secret_key`).
    """
    out: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{field.alias or name}"
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if _is_secret_type(field.annotation) or extra.get("secret") or is_secret_key(name):
            out.add(key)
        for arg in (field.annotation, *typing.get_args(field.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                out |= secret_fields(arg, key + ".")
    return frozenset(out)


def _is_secret(key: str, secrets: frozenset[str]) -> bool:
    """True when ``key`` (dotted, as reported) is or is inside a secret field."""
    parts = key.split(".")
    return is_secret_key(key) or any(
        ".".join(parts[i:j]) in secrets
        for i in range(len(parts))
        for j in range(i + 1, len(parts) + 1)
    )


def format_validation_error(
    error: ValidationError,
    source: str,
    prefix: str = "",
    origins: Mapping[str, str] | None = None,
    secrets: frozenset[str] = frozenset(),
) -> str:
    """One line for the first problem: key, file (or variable), what was expected.

    ``origins`` maps a dotted key (``monitor.drift_share``) to the OPSLOOP_* variable that
    set it, so a bad value from the environment names the variable, not the file.
    ``secrets`` names secret fields (see :func:`secret_fields`): their value is never shown.
    An unknown key is reported before anything else: a misspelt key also makes the key it
    was meant to be look missing, and the typo is the thing to fix.
    """
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(p) for p in first["loc"])
    if prefix:
        key = f"{prefix}.{key}" if key else prefix
    variable = _origin(key, origins or {})
    secret = _is_secret(key, secrets)
    where = f"{variable} (environment)" if variable else source
    if first["type"] == "extra_forbidden":
        return f"{where}: unknown key '{key}'; remove it or check its spelling"
    if first["type"] == "missing":
        return f"{where}: missing key '{key}'"
    if first["type"] in ("value_error", "assertion_error"):
        # A validator's own sentence. The input is echoed only when it is a plain value
        # under a key that does not name a secret: a table may hold a connection string.
        message = str((first.get("ctx") or {}).get("error") or first["msg"])
        value = first.get("input")
        shown = isinstance(value, str | int | float) and not secret
        return f"{where}: '{key}': {message}" + (f" (got {_shown(value)})" if shown else "")
    expected = _TYPE_NAMES.get(first["type"], first["msg"].lower())
    got = _hidden(first.get("input")) if secret else _shown(first.get("input"))
    if first["type"] in _TYPE_NAMES:
        return f"{where}: '{key}' must be {expected}, got {got}"
    return f"{where}: '{key}': {expected} (got {got})"


def _origin(key: str, origins: Mapping[str, str]) -> str:
    """The variable that set ``key`` or one of its parents, or ""."""
    while key:
        if key in origins:
            return origins[key]
        key = key.rpartition(".")[0]
    return ""


def validate_settings(
    model: type[M],
    raw: Mapping[str, Any],
    *,
    source: str,
    prefix: str = "",
    origins: Mapping[str, str] | None = None,
    context: Mapping[str, Any] | None = None,
) -> M:
    """``raw`` validated by ``model``; a ConfigError of one line names the bad key.

    The one way opsloop checks settings: the core's own sections and every plugin's
    ``[plugin.<name>]`` table. ``context`` reaches the model's validators as
    ``info.context`` (a plugin's settings get ``environ``, ``root`` and ``source``).
    """
    try:
        return model.model_validate(dict(raw), context=dict(context or {}))
    except ValidationError as exc:
        message = format_validation_error(exc, source, prefix, origins, secret_fields(model))
        raise ConfigError(message) from None


def load_config(path: Path | None, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate the config at ``path`` (None: defaults), then apply env overrides."""
    environ = os.environ if environ is None else environ
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "<defaults>"
    origins: dict[str, str] = {}
    for (section, key), (variable, value) in env_overrides(environ).items():
        target = data.setdefault(section, {})
        if not isinstance(target, dict):
            raise ConfigError(f"{source}: '{section}' must be a table")
        target[key] = value
        origins[f"{section}.{key}"] = variable
    config = validate_settings(Config, data, source=source, origins=origins)
    config.source = source
    return config


STARTER = """\
# opsloop project settings. Every key is optional; the values shown are the defaults.
# Environment variables override any key: OPSLOOP_<SECTION>__<KEY>, e.g.
# OPSLOOP_MONITOR__ALPHA=0.01

[project]
name = "{name}"
home = ".opsloop"              # where opsloop keeps its state, beside this file
share_group = false            # false: the home is private (0700); true: group-shared (2770)

[warehouse]
path = "warehouse.duckdb"      # DuckDB file under the home (ingested data, predictions)

[records]
path = "records.sqlite"        # signals, alerts, incidents, runbook runs (append-only)

[audit]
path = "audit.jsonl"           # keyed, hash-chained audit log; check it: `opsloop audit verify`
actor = ""                     # who you are in the audit log (default: $OPSLOOP_ACTOR or OS user)
key_file = ""                  # HMAC key sealing the log (default: ~/.config/opsloop/keys/<log id>)

[plugins]
enabled = []                   # allow-list of plugin names (empty: all installed)
disabled = []                  # block-list (also: OPSLOOP_DISABLE_PLUGINS=a,b)
paths = []                     # folders of one-off project plugins (*.py files)
order = []                     # plugins whose hooks run first, in this order

[monitor]
detector = "profile"           # drift detector by name: profile (built in), evidently, psi-ks
alpha = 0.05                   # false-alarm rate across features (Benjamini-Hochberg)
psi_threshold = 0.1            # a significant feature drifts when an effect size reaches
js_threshold = 0.1             #   its threshold: PSI, Jensen-Shannon distance, or the
wasserstein_threshold = 0.1    #   Wasserstein distance in reference standard deviations
min_drifted_features = 1       # the dataset drifts when at least this many features drifted
drift_share = 0.0              #   and they are at least this share of the features (0: any)
missing_rate_change = 0.05     # data quality: missing-rate changes at least this large
bins = 100                     # reference profiles: quantile bins per numeric feature
profile_on_register = true     # profile the training data of every registered version
window = "1h"                  # `opsloop monitor check`: how far back to read served traffic
interval = "5m"                # `opsloop monitor watch`: time between checks
min_labels = 100               # model quality: labelled rows needed to compare metrics
quality_drop = 0.05            #   degraded when accuracy, f1, roc_auc, ... drop this much

[respond]
runbook_timeout = 600          # seconds a runbook cell may run
kernel = "python3"
# Notifiers (docs/notifiers.md): one table each; secrets from the environment.
# [respond.notify.oncall]
# type = "pagerduty"           # webhook, slack, pagerduty, email
# routing_key_env = "PD_ROUTING_KEY"
# severities = ["critical"]
# Automated retraining of a model on drift or quality signals (docs/retraining.md):
# [respond.retrain.my-model]
# training_data = "raw.my_table" # retrain on the latest ingested data
# triggers = ["drift", "quality"]
# canary_min_requests = 200      # then promote or roll back through [registry.gate]

[registry]
cards = "cards"                # model cards (`opsloop model card`), under the home
# The promotion gate: `opsloop model promote` evaluates the candidate on a holdout table.
# [registry.gate]
# holdout = "raw.holdout"      # dataset.table, read back through the ingest plugin
# target = "target"
# thresholds = {{ roc_auc = 0.9, accuracy = 0.85 }}   # minimums
# max_regression = {{ roc_auc = 0.01 }}               # vs the current champion
# [registry.readiness]
# required_for = ["champion"]  # aliases that need a go from `opsloop model ready`

# Plugin settings go in [plugin.<name>] tables, e.g.
# [plugin.mlflow]
# tracking_uri = "postgresql://127.0.0.1:5432/mlflow"
"""
