"""Deployment readiness: a go/no-go checklist for one model version, kept as a record.

`opsloop model ready NAME VERSION` checks each item, stores the verdict as a
``ReadinessVerdict`` record and audits it. Promotion requires a go verdict for the aliases
in ``[registry.readiness] required_for``; a serving plugin can require one through
:func:`require_ready`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    from opsloop.interfaces import CheckResult
    from opsloop.project import Project
    from opsloop.records import Evidence, ModelVersionRef, ReadinessVerdict

#: The checklist, in the order it is reported.
ITEMS: tuple[str, ...] = (
    "evaluation passed",
    "load test recorded",
    "security scan recorded",
    "rollback target exists",
    "owner set",
    "artifacts intact",
)


def _evidence_item(evidence: Evidence | None, what: str, how: str) -> tuple[bool, str]:
    if evidence is None:
        return False, f"no {what} recorded; {how}"
    when = evidence.created_at[:19]
    summary = f": {evidence.summary}" if evidence.summary else ""
    if evidence.passed is False:
        return False, f"{what} {evidence.id} ({when}) failed{summary}"
    verdict = "passed" if evidence.passed else "recorded"
    return True, f"{what} {evidence.id} ({when}) {verdict}{summary}"


def checklist(
    project: Project, ref: ModelVersionRef, alias: str = "champion"
) -> list[dict[str, Any]]:
    """Each readiness item for ``ref`` as ``{item, ok, detail}``."""
    from opsloop import registry

    name, version = ref.name, ref.version
    store = registry.get_store(project)
    items: list[dict[str, Any]] = []

    def add(item: str, ok: bool, detail: str) -> None:
        items.append({"item": item, "ok": bool(ok), "detail": detail})

    cmd = f"opsloop model evidence {name} {version}"
    ok, detail = _evidence_item(
        registry.latest_evidence(project, name, version, "evaluation"),
        "evaluation",
        f"run `opsloop model evaluate {name} {version}`",
    )
    add("evaluation passed", ok, detail)
    ok, detail = _evidence_item(
        registry.latest_evidence(project, name, version, "load_test"),
        "load test",
        f"record one with `{cmd} --kind load_test --file result.json`",
    )
    add("load test recorded", ok, detail)
    ok, detail = _evidence_item(
        registry.latest_evidence(project, name, version, "security_scan"),
        "security scan",
        f"record one with `{cmd} --kind security_scan --file scan.json`",
    )
    add("security scan recorded", ok, detail)

    current = registry.current_version(project, name, alias)
    if current is not None and current != version:
        target: str | None = current
        detail = f"@{alias} is version {current} now; a rollback would go back to it"
    elif current == version:
        target = registry.rollback_target(project, name, alias)
        detail = (
            f"@{alias} would roll back to version {target}"
            if target
            else f"version {version} is the only version @{alias} has held"
        )
    else:
        target = None
        detail = f"@{alias} is not set, so there is nothing to roll back to"
    if target is not None:
        try:
            store.resolve(name, target)
        except OpsloopError as exc:
            target, detail = None, f"rollback target version {target} is gone: {exc}"
    add("rollback target exists", target is not None, detail)

    owner = registry.metadata(project, name, version).get("owner", "")
    add(
        "owner set",
        bool(owner),
        f"owner: {owner}"
        if owner
        else f"no owner; set one with `opsloop model meta {name} --owner`",
    )

    problems = registry.governance(store, "a readiness check").verify(ref)
    add(
        "artifacts intact",
        not problems,
        "every artifact file matches its SHA-256" if not problems else "; ".join(problems[:3]),
    )
    return items


def check_readiness(
    project: Project, name: str, version: str, alias: str = "champion"
) -> ReadinessVerdict:
    """Run the checklist for a version, store the verdict as a record and audit it."""
    from opsloop import registry
    from opsloop.records import ReadinessVerdict

    ref = registry.get_store(project).resolve(name, version)
    items = checklist(project, ref, alias)
    verdict = ReadinessVerdict(
        model=ref.name,
        version=ref.version,
        items=items,
        go=all(i["ok"] for i in items),
        actor=project.audit.actor,
    )
    project.emit(
        verdict,
        "model.ready",
        f"{ref.name}/{ref.version}",
        after={"go": verdict.go, "id": verdict.id},
        detail={"failed": [i["item"] for i in items if not i["ok"]]},
    )
    return verdict


def latest_verdict(project: Project, name: str, version: str) -> ReadinessVerdict | None:
    """The newest readiness verdict for a version, or None."""
    from opsloop.records import ReadinessVerdict

    found = [
        v
        for v in project.records.list(ReadinessVerdict)
        if v.model == name and v.version == version
    ]
    return found[-1] if found else None


def require_ready(project: Project, name: str, version: str) -> ReadinessVerdict:
    """The newest verdict for a version when it is a go; a one-line OpsloopError otherwise."""
    verdict = latest_verdict(project, name, version)
    if verdict is None:
        raise OpsloopError(
            f"{name} version {version} has no readiness verdict; run "
            f"`opsloop model ready {name} {version}`"
        )
    if not verdict.go:
        failed = ", ".join(i["item"] for i in verdict.items if not i["ok"])
        raise OpsloopError(
            f"{name} version {version} is not ready ({verdict.id}, {verdict.created_at[:19]}): "
            f"{failed}",
            exit_code=1,
        )
    return verdict


class ReadinessGate:
    """Promotion gate: a go verdict is required for the aliases in ``required_for``."""

    name = "readiness"

    def __init__(self, project: Project, aliases: list[str]) -> None:
        self.project = project
        self.aliases = list(aliases)

    def __call__(self, ref: ModelVersionRef, alias: str) -> CheckResult | None:
        from opsloop.interfaces import CheckResult

        if alias not in self.aliases:
            return None
        verdict = latest_verdict(self.project, ref.name, ref.version)
        if verdict is None:
            return CheckResult(
                self.name,
                False,
                f"no readiness verdict (run `opsloop model ready {ref.name} {ref.version}`)",
            )
        if not verdict.go:
            failed = ", ".join(i["item"] for i in verdict.items if not i["ok"])
            return CheckResult(self.name, False, f"no-go {verdict.id}: {failed}")
        return CheckResult(self.name, True, f"go {verdict.id} ({verdict.created_at[:19]})")
