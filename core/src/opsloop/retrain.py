"""Automated retraining: retrain, evaluate, challenger, canary, then promote or roll back.

A ``[respond.retrain.<model>]`` policy (:class:`~opsloop.config.RetrainPolicy`) says when a
model is retrained (a drift or quality signal about it, or ``opsloop retrain NAME``), on
what data, and what its canary must show. One run:

1. **train** on the latest ingested ``training_data`` (the ``read_dataset`` hook) with the
   ``train_model`` hook;
2. **register** the new version with its lineage (``opsloop.registry.register_model``);
3. **evaluate** it with the promotion gates of the champion alias (the ``[registry.gate]``
   holdout; the evaluation is recorded as evidence); a miss ends the run ``rejected``;
4. **challenger**: move the challenger alias to it through the registry (an approved
   action); the serving stage follows the alias and sends it its canary share;
5. **canary**: read the prediction log until the challenger answered
   ``canary_min_requests`` requests (or ``canary_duration`` ran out) and judge it against
   the champion: error rate (requests the champion answered for it, role ``fallback``),
   p95 latency, agreement with the champion, accuracy from feedback labels;
6. **promote** it to champion through the gate, or **roll back**: remove the challenger
   alias, so every replica serves the champion alone.

Every step is audited as it happens (``retrain.*`` entries, besides the registry's own);
the run is one :class:`~opsloop.records.RetrainRun` record written when it ended. Moving
an alias is a destructive action (:mod:`opsloop.actions`): it needs an approval, given by
a person (``approved_by``) or, with ``auto_approve``, by the policy itself
(``policy:retrain/<model>``), recorded either way.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opsloop.errors import ConfigError, OpsloopError, one_line
from opsloop.records import SEVERITIES, RetrainRun, Signal, utcnow

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.config import RetrainPolicy
    from opsloop.project import Project

POLICY_APPROVER = "policy:retrain/{model}"


def policy_for(project: Project, model: str) -> RetrainPolicy:
    """The model's ``[respond.retrain.<model>]`` policy; a one-line ConfigError without one."""
    policies = project.config.respond.retrain
    if model not in policies:
        known = ", ".join(sorted(policies)) or "none"
        raise ConfigError(
            f"no retraining policy for model '{model}' (policies: {known}); add "
            f'[respond.retrain.{model}] with training_data = "dataset.table" to opsloop.toml'
        )
    return policies[model]


# ---------------------------------------------------------------------------- the canary
@dataclass
class CanaryVerdict:
    """The canary's state: ``ok`` None while undecided; ``figures`` for the record."""

    ok: bool | None
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def _requests(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per request (the first scored row), for per-request counts and latency."""
    if frame.empty:
        return frame
    return frame.drop_duplicates("request_id", keep="first")


def _p95(frame: pd.DataFrame) -> float:
    values = frame["latency_ms"].dropna().astype(float)
    return float(values.quantile(0.95)) if len(values) else math.nan


def _accuracy(frame: pd.DataFrame) -> tuple[float, int]:
    labelled = frame[frame["label"].notna()] if "label" in frame.columns else frame.iloc[0:0]
    if labelled.empty:
        return math.nan, 0
    pairs = zip(labelled["prediction"], labelled["label"], strict=True)
    same = [str(p) == str(t) for p, t in pairs]
    return sum(same) / len(same), len(same)


def judge_canary(
    project: Project,
    policy: RetrainPolicy,
    model: str,
    champion: str | None,
    challenger: str,
    since: str,
    *,
    final: bool = False,
) -> CanaryVerdict:
    """Judge the challenger on the prediction log since ``since`` (ISO time), vs the champion.

    Fails as soon as the failed requests exceed the error budget of the window
    (``max_error_rate * canary_min_requests``); otherwise decides once the challenger
    answered ``canary_min_requests`` requests; ``final`` (the duration ran out) decides on
    whatever there is, and too few requests is a failure (inconclusive).
    """
    frame = project.hook.read_predictions(project=project, model=model, since=since)
    if frame is None or frame.empty or "role" not in frame.columns:
        import pandas as pd

        frame = pd.DataFrame(columns=["request_id", "role", "model_version", "latency_ms"])
    versions = frame["model_version"].astype(str)
    mine = frame[(frame["role"] == "challenger") & (versions == str(challenger))]
    fallback = frame[frame["role"] == "fallback"]
    theirs = frame[(frame["role"] == "champion") & (versions == str(champion))]
    served, failed, base = _requests(mine), _requests(fallback), _requests(theirs)
    total = len(served) + len(failed)
    rate = len(failed) / total if total else 0.0
    figures: dict[str, Any] = {
        "challenger_requests": total,
        "failed_requests": len(failed),
        "error_rate": round(rate, 4),
        "champion_requests": len(base),
    }
    budget = policy.max_error_rate * policy.canary_min_requests
    if len(failed) > budget:
        return CanaryVerdict(
            False,
            f"{len(failed)} of {total} challenger requests failed (the champion answered "
            f"them); the error budget is {budget:g} of {policy.canary_min_requests} "
            f"(max_error_rate {policy.max_error_rate:g})",
            figures,
        )
    if total < policy.canary_min_requests:
        if not final:
            return CanaryVerdict(None, f"{total} of {policy.canary_min_requests} requests", figures)
        return CanaryVerdict(
            False,
            f"inconclusive: the challenger answered {total} request(s) in canary_duration "
            f"{policy.canary_duration}, fewer than canary_min_requests "
            f"{policy.canary_min_requests}; is [plugin.fastapi] canary_share above 0?",
            figures,
        )
    problems: list[str] = []
    if rate > policy.max_error_rate:
        problems.append(f"error rate {rate:.2%} > max_error_rate {policy.max_error_rate:.2%}")
    mine_p95, theirs_p95 = _p95(served), _p95(base)
    figures.update(challenger_p95_ms=round(mine_p95, 3), champion_p95_ms=round(theirs_p95, 3))
    if policy.max_latency_ratio is not None and len(base) >= 10 and theirs_p95 > 0:
        ratio = mine_p95 / theirs_p95
        figures["latency_ratio"] = round(ratio, 3)
        if ratio > policy.max_latency_ratio:
            problems.append(
                f"p95 latency {mine_p95:.2f} ms is {ratio:.1f}x the champion's "
                f"{theirs_p95:.2f} ms (max_latency_ratio {policy.max_latency_ratio:g})"
            )
    if policy.min_agreement is not None and champion is not None and not mine.empty:
        agreement = _agreement(project, model, champion, mine)
        figures["agreement"] = round(agreement, 4)
        if agreement < policy.min_agreement:
            problems.append(
                f"agrees with the champion on {agreement:.1%} of rows "
                f"(min_agreement {policy.min_agreement:.1%})"
            )
    if policy.max_quality_drop is not None:
        mine_acc, mine_n = _accuracy(mine)
        theirs_acc, theirs_n = _accuracy(theirs)
        figures.update(challenger_labels=mine_n, champion_labels=theirs_n)
        if min(mine_n, theirs_n) >= policy.min_labels:
            drop = theirs_acc - mine_acc
            figures.update(
                challenger_accuracy=round(mine_acc, 4), champion_accuracy=round(theirs_acc, 4)
            )
            if drop > policy.max_quality_drop:
                problems.append(
                    f"accuracy {mine_acc:.3f} from feedback is {drop:.3f} below the "
                    f"champion's {theirs_acc:.3f} (max_quality_drop {policy.max_quality_drop:g})"
                )
        else:
            figures["quality"] = f"not judged: fewer than min_labels {policy.min_labels} labels"
    if problems:
        return CanaryVerdict(False, "; ".join(problems), figures)
    return CanaryVerdict(
        True,
        f"{total} challenger requests, {len(failed)} failed ({rate:.2%}); every criterion met",
        figures,
    )


def _agreement(project: Project, model: str, champion: str, rows: pd.DataFrame) -> float:
    """The share of the challenger's logged rows the champion would have answered alike."""
    from opsloop.registry import get_store
    from opsloop.watch import features_window

    store = get_store(project)
    scorer = store.load(store.resolve(model, champion))
    features = features_window(rows)
    features = features.drop(columns=[c for c in ("prediction",) if c in features.columns])
    try:
        theirs = list(scorer.predict(features))
    except Exception as exc:  # noqa: BLE001 - a champion that cannot score these is a finding
        why = one_line(exc)
        raise OpsloopError(f"the champion could not score the canary rows: {why}") from None
    same = [str(a) == str(b) for a, b in zip(rows["prediction"], theirs, strict=True)]
    return sum(same) / len(same) if same else math.nan


# ---------------------------------------------------------------------------- a run
class _Steps:
    """Times and audits each step; the list becomes the RetrainRun's ``steps``."""

    def __init__(self, project: Project, model: str, run_id: str) -> None:
        self.project = project
        self.model = model
        self.run_id = run_id
        self.items: list[dict[str, Any]] = []

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[dict[str, Any]]:
        detail: dict[str, Any] = {}
        started = utcnow()
        t0 = time.perf_counter()
        status = "done"
        try:
            yield detail
        except BaseException as exc:
            status = "failed"
            detail["error"] = one_line(exc) if isinstance(exc, Exception) else type(exc).__name__
            raise
        finally:
            status = detail.pop("status", status)
            item = {
                "step": name,
                "status": status,
                "started_at": started,
                "seconds": round(time.perf_counter() - t0, 3),
                **detail,
            }
            self.items.append(item)
            self.project.audit.append(
                f"retrain.{name}",
                self.model,
                after={"status": status},
                detail={"run": self.run_id, **detail},
            )


@dataclass
class RetrainOutcome:
    """What :func:`maybe_retrain` did: the run, or why none ran."""

    run: RetrainRun | None = None
    skipped: str = ""


@contextlib.contextmanager
def _run_lock(project: Project, model: str) -> Iterator[bool]:
    """One run per model at a time (across processes); yields False when one is running."""
    from opsloop.names import safe_name

    path = project.path("retrain", f"{safe_name(model, 'model name')}.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def retrain(
    project: Project,
    model: str,
    *,
    approved_by: str = "",
    trigger: str = "manual",
    signal_id: str | None = None,
) -> RetrainRun:
    """Run the model's policy once, now (no cooldown); the RetrainRun record it wrote.

    ``approved_by`` names the person who approves the alias moves; without one the policy
    approves them when ``auto_approve`` is true, else they are dry runs (nothing moves).
    A run already in progress for the model is a one-line OpsloopError.
    """
    policy = policy_for(project, model)
    with _run_lock(project, model) as mine:
        if not mine:
            raise OpsloopError(
                f"a retraining run of '{model}' is in progress; wait for it to finish"
            )
        return _run(project, model, policy, approved_by, trigger, signal_id)


def _run(
    project: Project,
    model: str,
    policy: RetrainPolicy,
    approved_by: str,
    trigger: str,
    signal_id: str | None,
) -> RetrainRun:
    from opsloop import registry

    approver = approved_by.strip() or (
        POLICY_APPROVER.format(model=model) if policy.auto_approve else ""
    )
    run_id = RetrainRun(model=model, trigger=trigger).id  # the id the audit entries name
    started = utcnow()
    steps = _Steps(project, model, run_id)
    champion_before = registry.current_version(project, model, policy.champion_alias)
    project.audit.append(
        "retrain.start",
        model,
        after={"run": run_id},
        detail={"trigger": trigger, "signal": signal_id, "approved_by": approver or None},
    )
    state: dict[str, Any] = {"verdict": "failed", "version": None, "canary": {}, "error": None}
    try:
        _steps(project, model, policy, approver, steps, state, champion_before)
    except OpsloopError as exc:
        state["verdict"], state["error"] = "failed", one_line(exc)
    except Exception as exc:  # noqa: BLE001 - a plugin's bug still ends the run on record
        state["verdict"] = "failed"
        state["error"] = f"{type(exc).__name__}: {one_line(exc)}"
    finally:
        run = RetrainRun(
            id=run_id,
            model=model,
            trigger=trigger,
            signal_id=signal_id,
            verdict=state["verdict"],
            version=state["version"],
            champion_before=champion_before,
            champion_after=registry.current_version(project, model, policy.champion_alias),
            steps=steps.items,
            canary=state["canary"],
            approved_by=approver,
            actor=project.audit.actor,
            started_at=started,
            finished_at=utcnow(),
            error=state["error"],
        )
        project.emit(
            run,
            "retrain.finish",
            model,
            before={"champion": champion_before},
            after={"verdict": run.verdict, "champion": run.champion_after, "run": run.id},
            detail={"version": run.version, "error": run.error},
        )
    return run


def _steps(
    project: Project,
    model: str,
    policy: RetrainPolicy,
    approver: str,
    steps: _Steps,
    state: dict[str, Any],
    champion: str | None,
) -> None:
    from opsloop import registry
    from opsloop.actions import Action, perform, promote_action
    from opsloop.registry import read_table

    with steps.step("train") as d:
        data = read_table(project, policy.training_data, "training data")
        trained = project.hook.train_model(
            project=project, data=data, target=policy.target, params=dict(policy.params)
        )
        if trained is None:
            raise OpsloopError(
                "no plugin trains models (the train_model hook); install one, e.g. "
                "`pip install opsloop-mlflow`"
            )
        d.update(
            training_data=policy.training_data,
            rows=len(data.frame),
            load_ids=list(data.load_ids),
            metrics={k: round(float(v), 4) for k, v in trained.metrics.items()},
        )
    with steps.step("register") as d:
        ref = registry.register_model(
            project,
            model,
            trained,
            {
                "dataset": policy.training_data,
                "load_ids": list(data.load_ids),
                "content_hash": data.content_hash,
            },
        )
        state["version"] = ref.version
        d.update(version=ref.version, uri=ref.uri)
    with steps.step("evaluate") as d:
        checks = registry.run_gates(project, ref, policy.champion_alias)
        d["gates"] = [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks]
        failed = [c for c in checks if not c.ok]
        if failed:
            d["status"] = "rejected"
            state["verdict"] = "rejected"
            state["error"] = "; ".join(f"{c.name}: {c.detail}" for c in failed)
            return
    alias = policy.challenger_alias
    with steps.step("challenger") as d:
        previous = registry.current_version(project, model, alias)
        action = Action(
            name="model.challenger",
            target=f"{model}@{alias}",
            summary=f"serve {model} version {ref.version} as @{alias} (its canary)",
            before={"version": previous},
            after={"version": ref.version},
            run=lambda: registry.set_alias(project, model, alias, ref.version),
            reason="retraining run " + steps.run_id,
        )
        if policy.canary_share is not None and approver:
            d["canary_share"] = _set_share(project, model, ref.version, policy.canary_share)
        result = perform(project, action, approved_by=approver)
        d.update(outcome=result.outcome, approved_by=result.approved_by or None)
        if result.outcome == "dry_run":
            d["status"] = "dry_run"
            state["verdict"] = "dry_run"
            return
        if result.outcome == "failed":
            raise OpsloopError(f"could not set {model}@{alias}: {result.error}")
        # The canary's window opens now: no replica served this version before, and
        # fallback rows (the champion answering for a failed challenger) from here on
        # are this challenger's failures.
        since = datetime.now(UTC).isoformat()
        d["reloaded"] = reload_servers(project, policy)
    with steps.step("canary") as d:
        verdict = watch_canary(project, policy, model, champion, ref.version, since)
        state["canary"] = {"ok": verdict.ok, "reason": verdict.reason, **verdict.figures}
        d.update(ok=verdict.ok, reason=verdict.reason, figures=verdict.figures)
        if not verdict.ok:
            d["status"] = "failed"
    if verdict.ok:
        with steps.step("promote") as d:
            result = perform(
                project,
                promote_action(project, model, ref.version, policy.champion_alias, "canary passed"),
                approved_by=approver,
            )
            d.update(outcome=result.outcome, approved_by=result.approved_by)
            if result.outcome != "done":
                d["status"] = "failed"
                d["error"] = result.error
        if result.outcome == "done":
            state["verdict"] = "promoted"
            with steps.step("retire") as d:
                d["removed"] = registry.remove_alias(
                    project, model, alias, reason=f"promoted to @{policy.champion_alias}"
                )
                d["reloaded"] = reload_servers(project, policy)
            return
        reason = f"promotion refused: {result.error}"
    else:
        reason = f"canary failed: {verdict.reason}"
    with steps.step("rollback") as d:
        action = Action(
            name="model.rollback",
            target=f"{model}@{alias}",
            summary=f"remove {model}@{alias} (version {ref.version}): {reason}",
            before={"version": ref.version},
            after={"version": None},
            run=lambda: registry.remove_alias(project, model, alias, reason=reason),
            reason=reason,
        )
        result = perform(project, action, approved_by=approver)
        d.update(outcome=result.outcome, approved_by=result.approved_by)
        if result.outcome != "done":
            raise OpsloopError(f"could not remove {model}@{alias}: {result.error}")
        d["reloaded"] = reload_servers(project, policy)
    state["verdict"] = "rolled_back"
    state["error"] = reason


def _set_share(project: Project, model: str, version: str, share: float) -> str:
    """Write the canary share on the version (registry metadata the servers read)."""
    from opsloop import registry

    if not registry.has_governance(registry.get_store(project)):
        return "not set: the registry keeps no metadata; the servers' own share applies"
    registry.set_metadata(project, model, version, {"canary_share": f"{share:g}"})
    return f"{share:g}"


def watch_canary(
    project: Project,
    policy: RetrainPolicy,
    model: str,
    champion: str | None,
    challenger: str,
    since: str,
) -> CanaryVerdict:
    """Judge the canary every ``poll_seconds`` until it is decided or the duration ran out."""
    from opsloop.durations import parse_duration

    deadline = time.monotonic() + parse_duration(policy.canary_duration)
    while True:
        final = time.monotonic() >= deadline
        verdict = judge_canary(project, policy, model, champion, challenger, since, final=final)
        if verdict.ok is not None:
            return verdict
        time.sleep(max(0.0, min(policy.poll_seconds, deadline - time.monotonic())))


def reload_servers(project: Project, policy: RetrainPolicy) -> list[str]:
    """POST /admin/reload to each of ``reload_urls``; one word per server for the record."""
    import json
    import urllib.error
    import urllib.request

    token = project.environ.get("OPSLOOP_ADMIN_TOKEN", "")
    out = []
    for url in policy.reload_urls:
        request = urllib.request.Request(
            url.rstrip("/") + "/admin/reload",
            data=b"{}",
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                json.loads(response.read() or b"{}")
            out.append(f"{url}: reloaded")
        except (urllib.error.URLError, OSError, ValueError) as exc:
            out.append(f"{url}: {one_line(exc)}")
    return out


# ---------------------------------------------------------------------------- signals
def _cooldown_left(project: Project, model: str, policy: RetrainPolicy) -> float:
    from opsloop.durations import parse_duration

    runs = [r for r in project.records.list(RetrainRun) if r.model == model]
    if not runs:
        return 0.0
    last = datetime.fromisoformat(runs[-1].started_at or runs[-1].created_at)
    left = parse_duration(policy.cooldown) - (datetime.now(UTC) - last).total_seconds()
    return max(0.0, left)


def matches(policy: RetrainPolicy, signal: Signal) -> bool:
    """Whether ``signal`` is one of the policy's triggers at or above its severity."""
    return signal.type in policy.triggers and SEVERITIES.index(signal.severity) >= SEVERITIES.index(
        policy.min_severity
    )


def maybe_retrain(project: Project, signal: Signal) -> RetrainOutcome:
    """Start a run for the signal's model when its policy names the signal (inline).

    Skipped, and audited as ``retrain.skip`` with the reason, within the cooldown or while
    a run of the model is in progress.
    """
    policy = project.config.respond.retrain.get(signal.subject)
    if policy is None or not matches(policy, signal):
        return RetrainOutcome(skipped="no policy names this signal")
    model = signal.subject
    left = _cooldown_left(project, model, policy)
    reason = ""
    if left > 0:
        reason = f"cooldown {policy.cooldown}: {left:.0f} s left"
    else:
        with _run_lock(project, model) as mine:
            if mine:
                run = _run(project, model, policy, "", signal.type, signal.id)
                return RetrainOutcome(run=run)
            reason = "a run of this model is in progress"
    project.audit.append(
        "retrain.skip", model, detail={"signal": signal.id, "reason": reason}, actor="opsloop"
    )
    return RetrainOutcome(skipped=reason)


def on_signal(project: Project, signal: Signal) -> threading.Thread | None:
    """The respond stage's reaction to a signal: a run when a policy names it.

    ``background`` policies run in a (non-daemon) thread, so a monitor check is not held
    for the canary; :func:`wait_for_runs` joins them. Returns the thread, if one started.
    """
    policy = project.config.respond.retrain.get(signal.subject)
    if policy is None or not matches(policy, signal):
        return None
    if not policy.background:
        _guarded(project, signal)
        return None
    thread = threading.Thread(
        target=_guarded, args=(project, signal), name=f"opsloop-retrain-{signal.subject}"
    )
    _threads(project).append(thread)
    thread.start()
    return thread


def _threads(project: Project) -> list[threading.Thread]:
    def made() -> list[threading.Thread]:
        return []

    return project.memo("retrain.threads", made)


def _guarded(project: Project, signal: Signal) -> None:
    try:
        maybe_retrain(project, signal)
    except Exception as exc:  # noqa: BLE001 - a failed start must not break the emitter
        print(f"opsloop: warning: retraining {signal.subject}: {one_line(exc)}", file=sys.stderr)


def wait_for_runs(project: Project, timeout: float | None = None) -> bool:
    """Join the background runs signals started in this project; False if one is still on."""
    threads = _threads(project)
    deadline = None if timeout is None else time.monotonic() + timeout
    for thread in list(threads):
        thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
    return not any(t.is_alive() for t in threads)


def list_runs(project: Project, model: str | None = None) -> list[RetrainRun]:
    """The recorded runs (of one model), oldest first."""
    return [r for r in project.records.list(RetrainRun) if model is None or r.model == model]


def describe(run: RetrainRun) -> str:
    """One line for a person."""
    what = {
        "promoted": f"version {run.version} promoted to champion",
        "rolled_back": f"version {run.version} rolled back",
        "rejected": f"version {run.version} rejected by the promotion gate",
        "dry_run": f"version {run.version} registered; alias moves not approved (dry run)",
        "failed": "failed",
    }[run.verdict]
    seconds = sum(float(s.get("seconds", 0)) for s in run.steps)
    tail = f": {run.error}" if run.error else ""
    return f"{run.id} {run.model}: {what} in {seconds:.1f} s{tail}"
