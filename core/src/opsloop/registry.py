"""The registry stage, as the core runs it: whichever plugin answers ``model_store``.

Everything here that is not about one vendor lives in the core, so another registry
plugin can replace MLflow: registration with provenance, alias moves behind promotion
gates, the alias history (``AliasMove`` records) and rollback over it, governance
metadata, recorded evidence and the history of a model. Every state change is audited
with its actor, what it was before and what it is after.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import IntegrityError, OpsloopError
from opsloop.names import safe_name

if TYPE_CHECKING:
    from opsloop.interfaces import CheckResult, ModelGovernance, ModelStore, TrainedModel
    from opsloop.project import Project
    from opsloop.records import AliasMove, Evidence, ModelVersionRef

EVIDENCE_TYPES = ("evaluation", "load_test", "security_scan")
ALIAS_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,127}$")
MAX_EVIDENCE_BYTES = 1_000_000


def get_store(project: Project) -> ModelStore:
    """The model registry backend; a clear error when no registry plugin is installed."""
    store = project.hook.model_store(project=project)
    if store is None:
        raise OpsloopError(
            "no model registry plugin is installed; install one, e.g. `pip install opsloop-mlflow`"
        )
    return store  # type: ignore[no-any-return]


def has_governance(store: ModelStore) -> bool:
    """True when the store declares the governance capability (provenance, integrity...)."""
    from opsloop.interfaces import GOVERNANCE

    return GOVERNANCE in getattr(store, "capabilities", ())


def governance(store: ModelStore, needed_for: str = "this") -> ModelGovernance:
    """The store's governance capability, or a one-line error saying what needs it."""
    if not has_governance(store):
        raise OpsloopError(
            f"the registry plugin '{getattr(store, 'name', type(store).__name__)}' does not "
            f"offer governance (provenance, artifact hashes, metadata), which {needed_for} "
            "needs; use opsloop-mlflow, or a store that declares "
            "capabilities = frozenset({'governance'})"
        )
    return store  # type: ignore[return-value]


def _clean_alias(alias: str) -> str:
    alias = str(alias).strip().lstrip("@")
    if not alias:
        raise OpsloopError("give an alias name, e.g. champion or challenger")
    if not ALIAS_RE.match(alias) or alias == "latest":
        raise OpsloopError(
            f"'{alias}' is not a valid alias; use a word such as 'champion' or 'challenger' "
            "(letters, digits, '_' and '-', starting with a letter; not 'latest')"
        )
    return alias


@contextmanager
def _moves_locked(project: Project) -> Iterator[None]:
    """One alias move at a time per project (the history must stay a sequence)."""
    import fcntl

    path = project.path("registry.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


# ---------------------------------------------------------------------------- register
def register_model(
    project: Project, name: str, trained: TrainedModel, lineage: Mapping[str, Any]
) -> ModelVersionRef:
    """Register a trained model as a new version; emitted as a record and audited.

    The store records the provenance (training data, code version, parameters, metrics,
    environment, signature, input example, a SHA-256 per artifact file). A refused or
    failed registration leaves no version behind and no audit entry but the refusal.
    """
    safe_name(name, "model name")  # it names folders: model cards, logs, reports
    store = get_store(project)
    project.hook.before_register(project=project, name=name, trained=trained)
    lineage = {**dict(lineage), "registered_by": project.audit.actor}
    ref = store.register(name, trained, lineage=lineage)
    project.emit(ref)
    project.audit.append(
        "model.register",
        f"{name}/{ref.version}",
        after={
            "uri": ref.uri,
            "store": ref.store,
            "run_id": ref.run_id,
            "load_ids": ref.load_ids,
            "metrics": ref.metrics,
            "dataset": lineage.get("dataset") or None,
            "content_hash": lineage.get("content_hash") or None,
            "imported_from": lineage.get("imported_from") or None,
        },
    )
    project.hook.after_register(project=project, ref=ref)
    return ref


def read_table(project: Project, table: str, what: str = "table") -> Any:
    """The ``dataset.table`` through the read_dataset hook (a ``Dataset``)."""
    dataset, dot, name = table.partition(".")
    if not dot or not dataset or not name:
        raise OpsloopError(f"{what} '{table}' must be named as dataset.table, e.g. raw.orders")
    data = project.hook.read_dataset(project=project, table=name, dataset=dataset)
    if data is None:
        raise OpsloopError(
            f"no plugin reads dataset tables, so {what} '{table}' cannot be read; "
            "install one, e.g. `pip install opsloop-dlt`"
        )
    return data


def register_from(
    project: Project,
    name: str,
    source: str,
    *,
    training_data: str = "",
    target: str = "",
    allow_pickle: bool = False,
) -> ModelVersionRef:
    """Register a model from a run (id or ``runs:/`` URI) or a model path.

    ``training_data`` (``dataset.table``) gives the lineage (load ids, content hash) and,
    when the source has none, the feature columns and the input example. The model is
    read by the store (pickles only with ``allow_pickle``) and registered through
    :func:`register_model`.
    """
    store = get_store(project)
    trained, found = governance(store, "importing a model").import_model(
        source, allow_pickle=allow_pickle
    )
    lineage: dict[str, Any] = dict(found)
    if target:
        trained.target = target
    if training_data:
        data = read_table(project, training_data, "training data")
        frame = data.frame
        target = trained.target or target
        if target and target not in frame.columns:
            shown = ", ".join(str(c) for c in list(frame.columns)[:12])
            raise OpsloopError(
                f"target column '{target}' is not in training data '{training_data}'; "
                f"columns: {shown}; pass --target"
            )
        if not trained.features:
            numeric = frame.select_dtypes(include="number").columns
            trained.features = [str(c) for c in numeric if c != target]
        missing = [f for f in trained.features if f not in frame.columns]
        if missing:
            raise OpsloopError(
                f"training data '{training_data}' lacks the model's feature column(s) "
                + ", ".join(missing[:8])
            )
        if trained.input_example is None or len(trained.input_example) == 0:
            trained.input_example = frame[list(trained.features)].head(5).reset_index(drop=True)
        lineage.update(
            dataset=training_data,
            load_ids=list(data.load_ids),
            content_hash=data.content_hash,
        )
    if trained.input_example is None or len(trained.input_example) == 0:
        raise OpsloopError(
            f"'{source}' carries no input example, so its signature cannot be inferred; "
            "pass --training-data dataset.table (also records the training-data lineage)"
        )
    return register_model(project, name, trained, lineage)


# ---------------------------------------------------------------------------- gates
def _gate_name(gate: Any) -> str:
    return str(getattr(gate, "name", None) or getattr(gate, "__name__", type(gate).__name__))


def run_gates(project: Project, ref: ModelVersionRef, alias: str) -> list[CheckResult]:
    """Every promotion gate's verdict on moving ``alias`` to ``ref``.

    A gate returning None does not guard this alias and is left out; a gate that raises
    an OpsloopError (a holdout that cannot be read, a tampered artifact) is a failed check.
    """
    return _gate_results(project, ref, alias)[0]


def _gate_results(
    project: Project, ref: ModelVersionRef, alias: str
) -> tuple[list[CheckResult], int]:
    """The gates' verdicts and how many gates the plugins registered."""
    from opsloop.interfaces import CheckResult

    results: list[CheckResult] = []
    count = 0
    for gate in project.collect("register_promotion_gates"):
        count += 1
        try:
            result = gate(ref, alias)
        except OpsloopError as exc:
            result = CheckResult(_gate_name(gate), False, f"error: {exc}")
        if result is not None:
            results.append(result)
    return results, count


def current_version(project: Project, name: str, alias: str) -> str | None:
    """The version ``alias`` points at now, or None when the alias is not set."""
    store = get_store(project)
    try:
        return store.resolve(name, _clean_alias(alias)).version
    except IntegrityError:
        raise
    except OpsloopError:
        return None


def _require_model(store: ModelStore, name: str) -> None:
    """A one-line error naming what is registered when ``name`` is not."""
    store.list_versions(name)


def _check_integrity(project: Project, store: ModelStore, ref: ModelVersionRef) -> None:
    """Refuse a version whose artifacts changed (stores without governance keep no hashes)."""
    if not has_governance(store):
        return
    problems = governance(store).verify(ref)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise IntegrityError(
            f"model {ref.name} v{ref.version}: artifact file {problems[0]} since "
            f"registration{more}; refusing to point an alias at it"
        )


def _move(
    project: Project,
    name: str,
    alias: str,
    version: str,
    *,
    force_reason: str,
    action: str,
) -> ModelVersionRef:
    """Gates, then the move, the AliasMove record, the audit entry and after_promote."""
    from opsloop.records import AliasMove

    store = get_store(project)
    alias = _clean_alias(alias)
    reason = (force_reason or "").strip()
    with _moves_locked(project):
        ref = store.resolve(name, version)
        previous = current_version(project, name, alias)
        if previous == ref.version:
            return ref  # already there: nothing moves, nothing to audit
        _check_integrity(project, store, ref)
        results, registered = _gate_results(project, ref, alias)
        failed = [r for r in results if not r.ok]
        checks = [{"name": r.name, "ok": r.ok, "detail": r.detail} for r in results]
        if failed and not reason:
            project.audit.append(
                f"{action}.refused",
                f"{name}@{alias}",
                before={"version": previous},
                after={"version": ref.version},
                detail={"failed": [f"{r.name}: {r.detail}" for r in failed], "gates": checks},
            )
            raise OpsloopError(
                f"promotion of {name} version {ref.version} to '{alias}' refused by gate "
                + "; ".join(f"'{r.name}' ({r.detail})" for r in failed)
                + "; the alias did not move (override: --force --reason TEXT, audited)",
                exit_code=1,
            )
        forced = bool(failed)
        moved_from = store.set_alias(name, alias, ref.version)
        previous = moved_from if moved_from is not None else previous
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=previous,
            to_version=ref.version,
            reason=reason,
            forced=forced,
            actor=project.audit.actor,
            checks=checks,
        )
        _emit_move(project, store, move)
        project.audit.append(
            f"{action}.forced" if forced else action,
            f"{name}@{alias}",
            before={"version": previous},
            after={"version": ref.version},
            detail={
                "gates": checks
                or (f"no gate guards @{alias}" if registered else "no gate configured"),
                "forced": forced,
                "reason": reason,
                "move": move.id,
            },
        )
    ref = store.resolve(name, ref.version)
    project.hook.after_promote(project=project, ref=ref, alias=alias, previous=previous)
    return ref


def _emit_move(project: Project, store: ModelStore, move: AliasMove) -> None:
    """Record the move; if that fails, put the alias back so history and registry agree."""
    try:
        project.emit(move)
    except BaseException:
        if move.from_version is not None:
            store.set_alias(move.model, move.alias, move.from_version)
        raise


def set_alias(
    project: Project, name: str, alias: str, version: str, *, force_reason: str = ""
) -> ModelVersionRef:
    """Move ``alias`` to ``version`` after the promotion gates pass; audited either way.

    A failed gate refuses the move (the alias stays where it was) unless ``force_reason``
    is given, which is recorded in the audit log as a forced move.
    """
    return _move(project, name, alias, version, force_reason=force_reason, action="model.alias")


def promote(
    project: Project,
    name: str,
    version: str,
    *,
    alias: str = "champion",
    force_reason: str = "",
) -> ModelVersionRef:
    """Promote ``version`` to ``alias`` (default champion) through the promotion gates.

    A failed gate raises OpsloopError (exit code 1) naming the check and its figures, and
    nothing moves. ``force_reason`` overrides failed gates; the move is audited as forced
    with the reason. Artifacts that fail their hash check are never promoted.
    """
    return _move(project, name, alias, version, force_reason=force_reason, action="model.promote")


# ---------------------------------------------------------------------------- history
def alias_moves(project: Project, name: str, alias: str | None = None) -> list[AliasMove]:
    """The recorded moves of ``name``'s aliases (or one alias), oldest first."""
    from opsloop.records import AliasMove

    wanted = _clean_alias(alias) if alias else None
    return [
        m
        for m in project.records.list(AliasMove)
        if m.model == name and (wanted is None or m.alias == wanted)
    ]


def alias_stack(project: Project, name: str, alias: str) -> list[str]:
    """The versions ``alias`` held, oldest first, replayed from the AliasMove records.

    A move pushes its version (and the version it left, when the history did not know
    it: an alias set outside opsloop); a rollback pops.
    """
    stack: list[str] = []
    for move in alias_moves(project, name, alias):
        if move.rollback:
            if stack and stack[-1] == move.from_version:
                stack.pop()
            if not stack or stack[-1] != move.to_version:
                stack.append(move.to_version)
            continue
        if move.from_version is not None and (not stack or stack[-1] != move.from_version):
            stack.append(move.from_version)
        stack.append(move.to_version)
    return stack


def rollback_target(project: Project, name: str, alias: str = "champion") -> str | None:
    """The version a rollback of ``alias`` would go back to, or None."""
    current = current_version(project, name, alias)
    if current is None:
        return None
    stack = alias_stack(project, name, alias)
    if not stack or stack[-1] != current:
        stack.append(current)  # moved outside opsloop: the registry is the truth
    return stack[-2] if len(stack) >= 2 else None


def rollback(
    project: Project, name: str, *, alias: str = "champion", reason: str = ""
) -> ModelVersionRef:
    """Move ``alias`` back to the version it held before, in one audited step.

    A second rollback goes one further back. Gates do not run (the target held the alias
    before), but its artifacts must pass their hash check. No earlier version is a
    one-line OpsloopError, and nothing moves.
    """
    from opsloop.records import AliasMove

    store = get_store(project)
    alias = _clean_alias(alias)
    with _moves_locked(project):
        current = current_version(project, name, alias)
        if current is None:
            _require_model(store, name)
            raise OpsloopError(
                f"model '{name}' has no alias '{alias}', so there is nothing to roll back"
            )
        target = rollback_target(project, name, alias)
        if target is None:
            raise OpsloopError(
                f"{name}@{alias} is at version {current} and has no earlier version in this "
                "project's alias history to roll back to; nothing moved"
            )
        ref = store.resolve(name, target)
        _check_integrity(project, store, ref)
        store.set_alias(name, alias, target)
        move = AliasMove(
            model=name,
            alias=alias,
            from_version=current,
            to_version=target,
            reason=reason.strip(),
            rollback=True,
            actor=project.audit.actor,
        )
        _emit_move(project, store, move)
        project.audit.append(
            "model.rollback",
            f"{name}@{alias}",
            before={"version": current},
            after={"version": target},
            detail={"reason": reason.strip(), "move": move.id},
        )
    ref = store.resolve(name, target)
    project.hook.after_promote(project=project, ref=ref, alias=alias, previous=current)
    return ref


def history(project: Project, name: str) -> dict[str, Any]:
    """Versions (from the registry), alias moves and other changes (from the audit log)."""
    store = get_store(project)
    refs = store.list_versions(name)
    registered_by: dict[str, str] = {}
    events: list[dict[str, Any]] = []
    for entry in project.audit.entries():
        action = str(entry.get("action", ""))
        target = str(entry.get("target", ""))
        if not action.startswith("model."):
            continue
        if not (target == name or target.startswith((f"{name}/", f"{name}@"))):
            continue
        if action == "model.register":
            registered_by[target.split("/", 1)[1]] = str(entry.get("actor", ""))
        detail = entry.get("detail") or {}
        events.append(
            {
                "time": entry.get("time"),
                "actor": entry.get("actor"),
                "action": action,
                "target": target,
                "before": entry.get("before"),
                "after": entry.get("after"),
                "reason": detail.get("reason", "") if isinstance(detail, dict) else "",
            }
        )
    versions = []
    for ref in refs:
        who = registered_by.get(ref.version)
        if who is None:
            try:
                who = governance(store, "provenance").provenance(ref).get("registered_by") or ""
            except OpsloopError:
                who = ""
        versions.append(
            {
                "version": ref.version,
                "registered_at": ref.created_at,
                "registered_by": who,
                "aliases": list(ref.aliases),
                "run_id": ref.run_id,
                "metrics": ref.metrics,
                "uri": ref.uri,
            }
        )
    aliases = sorted(
        {m.alias for m in alias_moves(project, name)} | {a for r in refs for a in r.aliases}
    )
    return {
        "model": name,
        "versions": versions,
        "events": events,
        "alias_history": {a: alias_stack(project, name, a) for a in aliases},
    }


# ---------------------------------------------------------------------------- metadata
def set_metadata(
    project: Project, name: str, version: str | None, values: Mapping[str, str]
) -> dict[str, str]:
    """Set governance metadata (owner, intended_use, ...) on a model or one version; audited."""
    store = get_store(project)
    if version is not None:
        version = store.resolve(name, version).version
    else:
        store.resolve(name, "latest")  # the model must exist
    clean = {str(k): str(v).strip() for k, v in values.items()}
    gov = governance(store, "model metadata")
    before = gov.get_metadata(name, version)
    gov.set_metadata(name, version, clean)
    target = f"{name}/{version}" if version else name
    project.audit.append(
        "model.metadata",
        target,
        before={k: before.get(k) for k in clean},
        after=clean,
    )
    return {**before, **clean}


def metadata(project: Project, name: str, version: str | None = None) -> dict[str, str]:
    """A version's governance metadata over its model's (the version's value wins)."""
    store = get_store(project)
    get = governance(store, "model metadata").get_metadata
    merged = dict(get(name, None))
    if version is not None:
        merged.update({k: v for k, v in get(name, version).items() if v})
    return merged


# ---------------------------------------------------------------------------- evidence
def record_evidence(
    project: Project,
    name: str,
    version: str,
    type: str,
    *,
    file: Path | None = None,
    data: Mapping[str, Any] | None = None,
    passed: bool | None = None,
    summary: str = "",
) -> Evidence:
    """Record a load-test, security-scan or evaluation result for a version; audited.

    ``file`` is a JSON object (kept, redacted, with its SHA-256); its ``passed`` (or ``ok``)
    key gives the verdict unless ``passed`` is given.
    """
    from opsloop.records import Evidence
    from opsloop.redact import redact

    if type not in EVIDENCE_TYPES:
        raise OpsloopError(
            f"unknown evidence kind '{type}'; use one of {', '.join(EVIDENCE_TYPES)}"
        )
    ref = get_store(project).resolve(name, version)
    body: dict[str, Any] = dict(data or {})
    source, digest = "", ""
    if file is not None:
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise OpsloopError(f"cannot read evidence file {file}: {exc.strerror}") from None
        if len(raw) > MAX_EVIDENCE_BYTES:
            raise OpsloopError(
                f"evidence file {file} is {len(raw)} bytes; keep it under {MAX_EVIDENCE_BYTES} "
                "(record a summary and keep the full report elsewhere)"
            )
        try:
            loaded = json.loads(raw)
        except ValueError as exc:
            raise OpsloopError(f"evidence file {file} is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise OpsloopError(f"evidence file {file} must hold a JSON object")
        body.update(loaded)
        source, digest = str(file), hashlib.sha256(raw).hexdigest()
    found = [body.pop(k) for k in ("passed", "ok") if isinstance(body.get(k), bool)]
    if passed is None and found:
        passed = found[0]
    evidence = Evidence(
        model=ref.name,
        version=ref.version,
        type=type,  # type: ignore[arg-type]
        passed=passed,
        summary=summary or str(body.get("summary", ""))[:500],
        data=redact(body),
        source=source,
        sha256=digest,
        actor=project.audit.actor,
    )
    project.emit(evidence)
    project.audit.append(
        "model.evidence",
        f"{ref.name}/{ref.version}",
        after={
            "type": type,
            "verdict": {True: "passed", False: "failed", None: "none"}[passed],
            "id": evidence.id,
            "sha256": digest or None,
        },
    )
    return evidence


def latest_evidence(project: Project, name: str, version: str, type: str) -> Evidence | None:
    """The newest evidence of one kind for a version, or None."""
    from opsloop.records import Evidence

    found = [
        e
        for e in project.records.list(Evidence)
        if e.model == name and e.version == version and e.type == type
    ]
    return found[-1] if found else None
