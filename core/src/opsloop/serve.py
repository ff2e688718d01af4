"""The serve stage, as the core runs it: online servers and batch scoring via plugins."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    from opsloop.interfaces import ServerHandle
    from opsloop.project import Project
    from opsloop.records import ModelVersionRef


def start_server(project: Project, ref: ModelVersionRef, host: str, port: int) -> ServerHandle:
    """Start a scoring server for ``ref``; audited, since it exposes a model."""
    handle = project.hook.start_server(project=project, ref=ref, host=host, port=port)
    if handle is None:
        raise OpsloopError(
            "no serving plugin is installed; install one, e.g. `pip install opsloop-fastapi`"
        )
    project.audit.append("serve.start", f"{ref.name}/{ref.version}", after={"url": handle.url})
    return handle  # type: ignore[no-any-return]


def score_batch(project: Project, ref: ModelVersionRef, input_path: Path, output_path: Path) -> int:
    """Score a file or table with the model; returns the number of rows scored."""
    if not input_path.exists():
        raise OpsloopError(f"batch input {input_path} does not exist")
    rows = project.hook.score_batch(
        project=project, ref=ref, input_path=input_path, output_path=output_path
    )
    if rows is None:
        raise OpsloopError("no batch-scoring plugin is installed for this input")
    project.audit.append(
        "serve.batch", f"{ref.name}/{ref.version}",
        after={"input": str(input_path), "output": str(output_path), "rows": rows},
    )  # fmt: skip
    return int(rows)
