"""The objects hooks return: small dataclasses and protocols, free of any vendor SDK.

A plugin returns these from its hooks; the core and other plugins only ever see these
shapes, so a registry, a drift detector or a scanner can be swapped for another vendor's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.profiles import ReferenceProfile
    from opsloop.records import ModelVersionRef

Stage = Literal["core", "ingest", "registry", "serve", "monitor", "guard", "respond", "jupyter"]
STAGES: tuple[Stage, ...] = (
    "core",
    "ingest",
    "registry",
    "serve",
    "monitor",
    "guard",
    "respond",
    "jupyter",
)


# ---------------------------------------------------------------------------- plugins
@dataclass(frozen=True)
class PluginInfo:
    """How a plugin describes itself without importing its vendor SDK (cf. ZenML flavors).

    ``config_model`` is a dotted path ("pkg.module:Class") to a pydantic model for the
    plugin's ``[plugin.<name>]`` settings table; it is imported only when settings are read.
    """

    name: str
    stage: Stage
    summary: str = ""
    config_model: str | None = None
    vendor_packages: tuple[str, ...] = ()


@dataclass(frozen=True)
class CheckResult:
    """One `opsloop doctor` finding."""

    name: str
    ok: bool
    detail: str = ""
    plugin: str = ""


# ---------------------------------------------------------------------------- ingest
@dataclass(frozen=True)
class SourceSpec:
    """A source to ingest: ``kind`` picks the engine ("landing_files", "rest_api", "sql")."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)
    dataset: str = "raw"
    write_disposition: Literal["append", "replace", "merge"] = "append"
    primary_key: tuple[str, ...] = ()
    incremental: str | None = None  # cursor column / file modification time
    contract: str | None = None  # name of a data contract to enforce


@dataclass(frozen=True)
class DataContract:
    """Declared columns and rules a load must satisfy; bad rows go to quarantine."""

    name: str
    columns: Mapping[str, str]  # column -> type ("double", "bigint", "text", ...)
    rules: Mapping[str, str] = field(default_factory=dict)  # rule name -> SQL predicate
    on_violation: Literal["quarantine", "fail"] = "quarantine"
    # what a new column or a changed type does (dlt's schema contract modes)
    schema_changes: Literal["evolve", "freeze", "discard_row", "discard_value"] = "evolve"
    unique: tuple[str, ...] = ()  # columns whose combined value must not repeat
    freshness: Mapping[str, float] = field(default_factory=dict)  # column -> max age, seconds


@dataclass
class Dataset:
    """A table read back from the warehouse, with the load ids it came from (lineage)."""

    name: str
    frame: pd.DataFrame
    load_ids: list[str] = field(default_factory=list)
    content_hash: str = ""


# ---------------------------------------------------------------------------- registry
@dataclass
class TrainedModel:
    """A model fresh from training, before it is registered."""

    model: Any
    flavor: str  # "sklearn", ...
    features: list[str]
    target: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    input_example: pd.DataFrame | None = None


@runtime_checkable
class ModelStore(Protocol):
    """A model registry backend: what every registry plugin must do.

    MLflow is the default one. The core's :mod:`opsloop.registry` (promotion gates, alias
    history, rollback) reaches the registry only through these methods, so another backend
    that implements them gets all of that for free. A backend that also keeps provenance
    and artifact hashes declares the :class:`ModelGovernance` capability. Errors for a
    person (an unknown model, version or alias) are one-line ``OpsloopError``s.
    """

    name: str

    def register(
        self, name: str, trained: TrainedModel, *, lineage: Mapping[str, Any]
    ) -> ModelVersionRef:
        """Log and register ``trained`` as a new version of ``name``.

        ``lineage`` may hold ``load_ids``, ``dataset``, ``content_hash`` (the training data),
        ``registered_by`` and ``imported_from``. The store records the provenance (see
        :meth:`provenance`) and a SHA-256 of every artifact file. A failure leaves nothing
        registered.
        """
        ...

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        """Point ``alias`` at ``version``; return the version it pointed at before."""
        ...

    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        """Look up a version by alias or number; raise OpsloopError when absent."""
        ...

    def load(self, ref: ModelVersionRef) -> Any:
        """Load a version for scoring (an object with ``predict(DataFrame)``).

        The artifact files are checked against the hashes recorded at registration first;
        a changed, missing or added file raises ``opsloop.errors.IntegrityError`` naming it,
        and nothing is deserialized.
        """
        ...

    def list_models(self) -> list[str]:
        """Every registered model name, sorted."""
        ...

    def list_versions(self, name: str) -> list[ModelVersionRef]:
        """Every version of ``name`` with its aliases, oldest first; OpsloopError if unknown."""
        ...


@runtime_checkable
class ModelGovernance(Protocol):
    """An optional ModelStore capability: provenance, integrity, metadata and imports.

    A store offers it by *declaring* it, ``capabilities = frozenset({"governance"})``, and
    implementing these methods; the core never probes for them one by one. Model cards,
    readiness verdicts, ``opsloop model show/verify/meta/import`` and the integrity check
    before an alias moves need it; a store without it still registers, serves and moves
    aliases.
    """

    def provenance(self, ref: ModelVersionRef) -> dict[str, Any]:
        """What a version was made from, as recorded at registration.

        Keys (a value the store does not know is ``None`` or empty, never guessed):
        ``registered_at``, ``registered_by``, ``run_id``, ``imported_from``,
        ``training_data`` ({dataset, load_ids, content_hash, target}), ``code``
        ({git_commit, git_dirty}), ``parameters``, ``metrics``, ``environment``
        ({python, platform, packages}), ``signature``, ``input_example`` (records),
        ``flavor``, ``artifacts`` ({location, files: {path: sha256}, manifest_sha256,
        digest}: ``digest`` is what a server shows as the artifact hash on /version).
        """
        ...

    def verify(self, ref: ModelVersionRef) -> list[str]:
        """Re-check every artifact file's hash; the problems (``"path: changed"``), or []."""
        ...

    def get_metadata(self, name: str, version: str | None = None) -> dict[str, str]:
        """Governance metadata (owner, intended_use, ...) of a model (or one version)."""
        ...

    def set_metadata(self, name: str, version: str | None, values: Mapping[str, str]) -> None:
        """Set governance metadata on a model (``version=None``) or one version."""
        ...

    def import_model(
        self, source: str, *, allow_pickle: bool = False
    ) -> tuple[TrainedModel, dict[str, Any]]:
        """Read a model from a run id / ``runs:/`` URI or a model path, ready to register.

        Returns the model and the lineage found with it (dataset, load ids, ...). Pickled
        files run code when read: they are refused unless ``allow_pickle`` is true.
        """
        ...


#: The capability a ModelStore declares in ``capabilities`` to offer ModelGovernance.
GOVERNANCE = "governance"
#: Methods every ModelStore has (the first four are all the core needs to move aliases).
MODEL_STORE_METHODS: tuple[str, ...] = (
    "register",
    "set_alias",
    "resolve",
    "load",
    "list_models",
    "list_versions",
)
#: Methods a store declaring the governance capability has.
GOVERNANCE_METHODS: tuple[str, ...] = (
    "provenance",
    "verify",
    "get_metadata",
    "set_metadata",
    "import_model",
)


# ---------------------------------------------------------------------------- serve
@runtime_checkable
class ServerHandle(Protocol):
    """A running scoring server started by a serve plugin."""

    url: str

    def stop(self) -> None: ...


@dataclass(frozen=True)
class BatchJob:
    """A batch-scoring run handed to a scale-out engine (see the ``scale_out`` hook).

    ``load_model`` and ``score`` must pickle (module-level functions or partials of them):
    an engine ships them to its workers, calls ``load_model()`` once per worker and
    ``score(model, frame, first_row)`` per partition, so its output equals the local path's.
    """

    ref: ModelVersionRef
    input: str  # a Parquet file or a folder of Parquet files every worker can read
    output: Path  # a folder every worker can write: part-NNNNN.parquet + _manifest.json
    load_model: Callable[[], Any]
    score: Callable[[Any, pd.DataFrame, int], pd.DataFrame]
    progress: Callable[[int, int | None], None] | None = None  # (rows done, rows in all)
    chunk_rows: int = 0  # rows per partition when row groups are grouped (0: engine default)


@dataclass(frozen=True)
class BatchOutcome:
    """What a batch run did: rows in the output, parts in all, parts skipped and written."""

    rows: int
    parts: int
    skipped: int
    written: int


@dataclass(frozen=True)
class ProfileJob:
    """A reference profile to build on a scale-out engine from Parquet files.

    With ``load_model`` and ``predict`` set, each partition's chunks get a ``prediction``
    column ``predict(model, chunk)`` (the model loaded once per worker) before profiling.
    """

    files: tuple[str, ...]
    columns: tuple[str, ...]
    prediction: str | None = None
    load_model: Callable[[], Any] | None = None
    predict: Callable[[Any, pd.DataFrame], Any] | None = None
    bins: int = 100
    max_categories: int = 100
    sample_rows: int = 200_000
    seed: int = 0
    progress: Callable[[int], None] | None = None  # rows read, per partition and pass


@runtime_checkable
class ScaleOut(Protocol):
    """An engine that runs batch scoring and profile building on a cluster."""

    name: str

    def score_batch(self, job: BatchJob) -> BatchOutcome: ...

    def build_profile(self, job: ProfileJob) -> ReferenceProfile: ...


@dataclass
class PredictContext:
    """What the serve hooks see around one prediction."""

    request_id: str
    model: ModelVersionRef
    inputs: pd.DataFrame
    outputs: Any = None
    latency_ms: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(eq=False)
class PredictionBatch:
    """Scored rows of one served model version, in request order: what a monitor consumes.

    Columnar, one entry per scored row, so a monitor updates its counters with array
    operations instead of paying a Python call per request. ``latency_ms`` and
    ``logged_at`` are numpy float64 arrays; ``inputs`` is built on first access.
    """

    model: ModelVersionRef
    role: str  # "champion" or "challenger": the model that answered these requests
    request_ids: list[str]
    row_numbers: Any  # numpy int64: each row's position in its request
    outputs: list[Any]  # JSON-ready predictions, one per row
    latency_ms: Any  # numpy float64: the request's time in the model
    logged_at: Any  # numpy float64: epoch seconds when the request was scored
    probabilities: list[Any] | None = None  # per-row class probabilities, when computed
    features: Any = None  # 2-D float64 array in ``columns`` order, or None (see ``frame``)
    columns: tuple[str, ...] = ()
    frame: pd.DataFrame | None = None  # the inputs when they are not one float array
    _inputs: pd.DataFrame | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.request_ids)

    @property
    def inputs(self) -> pd.DataFrame:
        """The scored rows as a DataFrame of feature columns (built once, on first access)."""
        if self._inputs is None:
            if self.frame is not None:
                self._inputs = self.frame
            else:
                import pandas as pd

                self._inputs = pd.DataFrame(self.features, columns=list(self.columns))
        return self._inputs


# ---------------------------------------------------------------------------- monitor
@dataclass
class FeatureDrift:
    """One feature's drift verdict.

    ``method``, ``statistic``, ``threshold`` and ``drifted`` are what every detector fills
    in. A detector that tests significance and measures effect size (the built-in
    ``profile`` detector does) also sets ``p_value`` (raw), ``effect`` (``psi``,
    ``jensen_shannon``, ``wasserstein``: normalized by the reference's standard
    deviation), ``significant`` and ``material``; then ``statistic`` is the p-value
    adjusted across features and ``threshold`` the false-alarm rate it is held to.
    """

    feature: str
    method: str
    statistic: float
    threshold: float
    drifted: bool
    p_value: float | None = None
    effect: dict[str, float] = field(default_factory=dict)
    significant: bool | None = None  # the adjusted p-value is at or below the threshold
    material: bool | None = None  # an effect size reached its threshold
    kind: str = ""  # "numeric" or "categorical"
    rows: int = 0  # values compared in the current window
    missing_rate: float | None = None  # in the current window
    reference_missing_rate: float | None = None


@dataclass
class QualityFinding:
    """A data-quality problem a drift check found: reported, never a crash.

    ``type``: ``missing_rate`` (the share of missing values changed), ``unseen_categories``,
    ``new_column``, ``missing_column``, ``retyped_column``, ``constant_column`` or
    ``empty_column``. ``value`` is the window's figure and ``reference`` the profile's.
    """

    column: str
    type: str
    severity: Literal["info", "warning", "critical"]
    detail: str
    value: float | None = None
    reference: float | None = None
    p_value: float | None = None


@dataclass
class DriftResult:
    """A dataset-level drift verdict with per-feature detail and an optional report file.

    ``rule`` says in words when the dataset counts as drifted; ``quality`` holds the
    data-quality findings and ``prediction`` the model output's own drift verdict, when
    the detector checks them.
    """

    detector: str
    drifted: bool
    share_drifted: float
    features: list[FeatureDrift] = field(default_factory=list)
    report_path: Path | None = None
    reference_rows: int = 0
    current_rows: int = 0
    quality: list[QualityFinding] = field(default_factory=list)
    prediction: FeatureDrift | None = None
    rule: str = ""
    profile_id: str = ""  # the stored reference profile checked against, if any
    model_version: str = ""
    window: str = ""

    @property
    def drifted_features(self) -> list[str]:
        return [f.feature for f in self.features if f.drifted]


@runtime_checkable
class DriftDetector(Protocol):
    """Compares a current window with a reference and says whether it drifted.

    ``detect`` gets the reference as a frame. A detector that can also work from a stored
    :class:`~opsloop.profiles.ReferenceProfile` (no raw reference needed) implements
    ``check(profile, current, *, columns=None)`` as well: see :class:`ProfileDriftDetector`.
    """

    name: str

    def detect(
        self,
        reference: pd.DataFrame,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
        report_dir: Path | None = None,
    ) -> DriftResult: ...


@runtime_checkable
class ProfileDriftDetector(DriftDetector, Protocol):
    """A drift detector that checks a window against a stored reference profile."""

    def check(
        self,
        profile: ReferenceProfile,
        current: pd.DataFrame,
        *,
        columns: list[str] | None = None,
    ) -> DriftResult: ...


# ---------------------------------------------------------------------------- guard
ScanTarget = Literal["input", "retrieved", "tool_output", "output"]


@dataclass
class Finding:
    """One thing a scanner found in a text."""

    scanner: str
    type: str  # "pii.email", "prompt_injection", "secret.aws_key", ...
    start: int = -1
    end: int = -1
    score: float = 1.0
    detail: str = ""
    tier: str = ""  # which detector tier fired: "rules", "model", or "" when not tiered


@dataclass
class ScanResult:
    """A scanner's verdict: allow, redact (``text`` is the redacted text) or block."""

    scanner: str
    verdict: Literal["allow", "redact", "block"]
    text: str
    findings: list[Finding] = field(default_factory=list)


@runtime_checkable
class Scanner(Protocol):
    """Scans one text (a prompt, a retrieved chunk, a tool output or a model output)."""

    name: str
    targets: tuple[ScanTarget, ...]

    def scan(self, text: str, *, target: ScanTarget) -> ScanResult: ...


# ---------------------------------------------------------------------------- respond
@dataclass(frozen=True)
class AlertRule:
    """Turns matching signals into an alert, and the alert into an incident.

    ``runbook`` names the runbook for its incidents: run by itself when ``auto_run`` and the
    runbook is not marked destructive, else only suggested. ``dedup_key`` is a template
    (``{rule}``, ``{subject}``, ``{type}``, ``{source}``, ``{label[NAME]}``): one open incident
    per key. ``group_window``: an alert within that many seconds of the key's incident being
    resolved reopens it instead of opening another (a flapping alert stays one incident).
    ``threshold`` signals within ``window`` seconds make one alert (a spike, not every
    signal). ``rate_limit`` = (N, seconds): at most N alerts of this rule per window; the
    rest are suppressed and counted on the key's open incident. See docs/alerts.md.
    """

    name: str
    signal_type: str
    min_severity: Literal["info", "warning", "critical"] = "warning"
    subject: str | None = None  # None matches any subject
    runbook: str | None = None
    open_incident: bool = True
    severity: Literal["info", "warning", "critical"] | None = None  # None: the signal's
    dedup_key: str = "{rule}\x1f{subject}"
    group_window: float = 0.0
    threshold: int = 1
    window: float = 0.0
    rate_limit: tuple[int, float] | None = None
    auto_run: bool = True
    owner: str = ""  # who gets its incidents; [respond] owners in config overrides it


@runtime_checkable
class Notifier(Protocol):
    """Delivers an alert to people: a webhook, Slack, PagerDuty, e-mail."""

    name: str

    def notify(self, alert: Any) -> None: ...


#: What a notification asks of the receiver, in PagerDuty's words: open or repeat
#: (``trigger``), someone is on it (``acknowledge``), it is over (``resolve``), or only news
#: (``note``: an incident marked mitigated; PagerDuty has no such action and skips it).
NotifyAction = Literal["trigger", "acknowledge", "resolve", "note"]


@dataclass(frozen=True)
class Notification:
    """One thing to tell people about an alert or incident: what a notifier delivers.

    Built by the core from a record (an alert, an incident, an incident update) and kept in
    the outbox as JSON, so it holds no secret: a notifier adds its keys when it sends.
    ``id`` is the record that caused it (the event id); ``dedup_key`` stays the same for
    every notification of one incident (PagerDuty's ``dedup_key``, a thread in a chat).
    """

    id: str
    event: str  # alert, incident.open, incident.update, incident.acknowledged, ...resolved, test
    action: NotifyAction
    dedup_key: str
    title: str
    severity: Literal["info", "warning", "critical"]
    subject: str = ""
    status: str = "open"  # the incident's status after this event
    incident_id: str | None = None
    alert_id: str | None = None
    rule: str = ""
    runbook: str | None = None
    note: str = ""
    project: str = ""  # the project's name: PagerDuty's source, the e-mail's sender name
    created_at: str = ""

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


@runtime_checkable
class DeliveringNotifier(Protocol):
    """A notifier the outbox drives: ``deliver`` sends one notification or raises.

    ``key`` is the idempotency key (notifier and event): the same on every retry of one
    delivery, so a receiver can drop a repeat. Raise ``opsloop.notify.DeliveryError``
    (``retry=False`` when trying again cannot help, e.g. HTTP 400); any other exception
    counts as a transient failure and is retried with backoff.
    """

    name: str

    def deliver(self, notification: Notification, key: str) -> None: ...


@dataclass(frozen=True)
class NotifierType:
    """A kind of notifier that ``[respond.notify.<name>] type = "<name>"`` configures.

    ``settings_model`` is a pydantic model of the table's own keys (the common keys
    ``type``, ``severities``, ``events``, ``backoff`` and ``max_backoff`` are the core's);
    ``build(name, settings, project)`` makes the notifier. Secrets are read when a
    notification is sent (``*_env`` names a variable), never at build time.
    """

    name: str
    settings_model: type[Any]
    build: Callable[[str, Any, Any], DeliveringNotifier]
    summary: str = ""


@dataclass(frozen=True)
class RunbookSpec:
    """A runbook notebook and the parameters it declares."""

    name: str
    path: Path
    summary: str = ""
    stage: Stage = "respond"
    secret_parameters: tuple[str, ...] = ()
    kind: str = "runbook"  # "runbook" or "report" (metadata opsloop.kind)
    #: metadata ``opsloop.destructive``: alert rules only suggest it, never run it by itself
    destructive: bool = False


CheckFn = Callable[[], CheckResult]


# ---------------------------------------------------------------------------- schedule
@dataclass(frozen=True)
class ScheduledJob:
    """What a job kind is asked to run: one schedule's target and parameters, for one slot."""

    schedule: str
    target: str
    parameters: dict[str, Any]
    slot: datetime  # the due time (UTC) this run is for
    trigger: Literal["due", "manual"] = "due"


@dataclass(frozen=True)
class JobOutcome:
    """How a scheduled job ended; ``record_id`` names the record it wrote (a RunbookRun)."""

    ok: bool
    summary: str = ""
    error: str | None = None
    record_id: str | None = None


@dataclass(frozen=True)
class JobKind:
    """A kind of job a schedule can run (``runbook``, ``monitor``, or a plugin's own).

    ``run`` does the work and returns a JobOutcome (raising OpsloopError is a failed run);
    ``check(project, target, parameters)`` validates a new schedule and returns the
    parameters to store (raise OpsloopError, one line, to refuse);
    ``command(project, target, parameters)`` returns the ``opsloop`` arguments that run the
    same job, for the Airflow export (``${NAME}`` in an argument is read from the worker's
    environment; ``${OPSLOOP_SCHEDULED_FOR}`` is the run's due time).
    """

    name: str
    summary: str
    run: Callable[[Any, ScheduledJob], JobOutcome]
    check: Callable[[Any, str, dict[str, Any]], dict[str, Any]] | None = None
    command: Callable[[Any, str, dict[str, Any]], list[str]] | None = None
