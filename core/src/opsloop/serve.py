"""The serve stage, as the core runs it: online servers and batch scoring via plugins."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    from opsloop.interfaces import ServerHandle
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef

#: Batch inputs that name a warehouse table rather than a file: ``duckdb:DATASET.TABLE``.
TABLE_PREFIX = "duckdb:"


def start_server(project: Project, ref: ModelVersionRef, host: str, port: int) -> ServerHandle:
    """Start a scoring server for ``ref``; audited, since it exposes a model."""
    handle = project.hook.start_server(project=project, ref=ref, host=host, port=port)
    if handle is None:
        raise OpsloopError(
            "no serving plugin is installed; install one, e.g. `pip install opsloop-fastapi`"
        )
    project.audit.append("serve.start", f"{ref.name}/{ref.version}", after={"url": handle.url})
    return handle  # type: ignore[no-any-return]


def score_batch(
    project: Project, ref: ModelVersionRef, input_path: Path | str, output_path: Path
) -> int:
    """Score a file or a warehouse table (``duckdb:DATASET.TABLE``); returns the rows scored."""
    spec = str(input_path)
    if not spec.startswith(TABLE_PREFIX) and not Path(spec).exists():
        raise OpsloopError(f"batch input {spec} does not exist")
    rows = project.hook.score_batch(
        project=project, ref=ref, input_path=Path(spec), output_path=output_path
    )
    if rows is None:
        raise OpsloopError("no batch-scoring plugin is installed for this input")
    audit_batch(project, ref, spec, output_path, int(rows))
    return int(rows)


def audit_batch(
    project: Project,
    ref: ModelVersionRef,
    input_spec: str,
    output_path: Path,
    rows: int,
    **detail: Any,
) -> None:
    """The audit entry of a batch run (also written by plugin commands that run batches)."""
    project.audit.append(
        "serve.batch", f"{ref.name}/{ref.version}",
        after={"input": input_spec, "output": str(output_path), "rows": rows},
        detail=detail or None,
    )  # fmt: skip
