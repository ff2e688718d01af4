"""Project configuration: ``opsloop.toml`` (or ``[tool.opsloop]`` in pyproject.toml).

A typed model with ``OPSLOOP_<SECTION>__<KEY>`` environment overrides. Unknown keys and
wrong types are one-line errors naming the key, the file and the expected type. Plugin
settings live in ``[plugin.<name>]`` tables and are checked by the plugin's own model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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


class RespondSection(_Section):
    runbook_timeout: float = Field(default=600, gt=0)  # seconds per cell
    kernel: str = "python3"


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


def format_validation_error(
    error: ValidationError,
    source: str,
    prefix: str = "",
    origins: Mapping[str, str] | None = None,
) -> str:
    """One line for the first problem: key, file (or variable), what was expected.

    ``origins`` maps a dotted key (``monitor.drift_share``) to the OPSLOOP_* variable that
    set it, so a bad value from the environment names the variable, not the file.
    An unknown key is reported before anything else: a misspelt key also makes the key it
    was meant to be look missing, and the typo is the thing to fix.
    """
    errors = error.errors()
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    key = ".".join(str(p) for p in first["loc"])
    if prefix:
        key = f"{prefix}.{key}" if key else prefix
    variable = _origin(key, origins or {})
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
        shown = isinstance(value, str | int | float) and not is_secret_key(key)
        return f"{where}: '{key}': {message}" + (f" (got {_shown(value)})" if shown else "")
    expected = _TYPE_NAMES.get(first["type"], first["msg"].lower())
    got = _shown(first.get("input"))
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
        raise ConfigError(format_validation_error(exc, source, prefix, origins)) from None


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
