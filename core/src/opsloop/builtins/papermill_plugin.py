"""Built-in plugin: runbook notebooks, found in the package and the project, executed with
papermill. papermill (about 2 s to import) is imported only when a notebook runs."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop import hookimpl
from opsloop.interfaces import CheckResult, PluginInfo

if TYPE_CHECKING:
    from opsloop.interfaces import RunbookSpec
    from opsloop.project import Project

#: Where a project keeps its own runbooks, relative to its root.
PROJECT_RUNBOOKS = Path("notebooks") / "runbooks"
#: Where a project keeps its own reports (listed and run like runbooks).
PROJECT_REPORTS = Path("notebooks") / "reports"
#: Kernel log lines that say nothing about why a kernel died.
_NOISE = ("Kernel is running over TCP without encryption",)
#: Cells papermill and opsloop add to a runbook; not counted when naming a failed cell.
_INJECTED = frozenset({"injected-parameters", "opsloop-secrets", "papermill-error-cell-tag"})
#: papermill writes the notebook it is running to ``<scheme><path>``: through a handler
#: that scrubs live secrets before anything reaches the disk.
_SCRUBBED = "opsloop-scrubbed://"
#: Set in each kernel's environment (a random tag, not a secret): every process the kernel
#: starts inherits it, even one that left the kernel's process group.
KERNEL_TAG_ENV = "OPSLOOP_KERNEL_TAG"


@hookimpl
def describe_plugin() -> PluginInfo:
    return PluginInfo(
        name="papermill",
        stage="respond",
        summary="runbook notebooks executed with papermill",
        vendor_packages=("papermill",),
    )


@hookimpl
def register_runbooks(project: Project) -> list[RunbookSpec]:
    """Shipped runbooks and reports, then the project's ``notebooks/runbooks`` and
    ``notebooks/reports`` (a project notebook with the same name wins)."""
    from opsloop.runbooks import runbook_specs_in, shipped_reports_dir, shipped_runbooks_dir

    specs: dict[str, RunbookSpec] = {}
    for folder in (
        shipped_runbooks_dir(),
        shipped_reports_dir(),
        project.root / PROJECT_RUNBOOKS,
        project.root / PROJECT_REPORTS,
    ):
        specs.update({s.name: s for s in runbook_specs_in(folder)})
    return list(specs.values())


@hookimpl
def register_checks(project: Project) -> list[CheckResult]:
    from opsloop.runbooks import shipped_runbooks_dir

    name = project.config.respond.kernel
    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        try:
            where = KernelSpecManager().get_kernel_spec(name).resource_dir
            kernel = CheckResult("runbook kernel", True, f"{name} ({where})", "papermill")
        except NoSuchKernel:
            kernel = CheckResult(
                "runbook kernel",
                False,
                f"kernel '{name}' is not installed; set [respond] kernel or run "
                "`python -m ipykernel install --user`",
                "papermill",
            )
    except ImportError as exc:
        kernel = CheckResult("runbook kernel", False, f"jupyter_client: {exc}", "papermill")
    shipped = shipped_runbooks_dir()
    return [
        kernel,
        CheckResult("shipped runbooks", shipped.is_dir(), str(shipped), "papermill"),
    ]


@hookimpl
def execute_notebook(
    project: Project,
    input_path: Path,
    output_path: Path,
    parameters: dict[str, Any],
    timeout: float,
) -> Path:
    """Run the notebook with papermill in the project root, one kernel per run."""
    import papermill
    from jupyter_client.kernelspec import NoSuchKernel
    from nbclient.exceptions import CellTimeoutError, DeadKernelError
    from papermill.exceptions import PapermillExecutionError

    from opsloop.runbooks import NotebookExecutionError

    _quiet_loggers()
    _register_scrubbed_io()
    kernel = project.config.respond.kernel
    kernel_log = output_path.with_name(output_path.name + ".kernel.log")
    groups: list[int] = []
    tag = secrets.token_hex(16)
    try:
        papermill.execute_notebook(
            str(input_path),
            _SCRUBBED + str(output_path),
            parameters=parameters,
            kernel_name=kernel,
            execution_timeout=timeout,
            cwd=str(project.root),
            progress_bar=False,
            log_output=False,
            request_save_on_cell_execute=True,
            kernel_manager_class=_kernel_manager_class(kernel_log, groups, tag),
        )
    except PapermillExecutionError as exc:
        cell = _mark_failed_cell(output_path, None)
        evalue = next((ln for ln in str(exc.evalue).splitlines() if ln.strip()), "")
        what = f"{exc.ename}: {evalue}" if evalue else str(exc.ename)
        raise NotebookExecutionError(f"{what} (cell {cell or '?'})") from None
    except DeadKernelError:
        cell = _mark_failed_cell(output_path, "the kernel died while running this cell")
        detail = _kernel_log_tail(kernel_log)
        raise NotebookExecutionError(
            f"kernel died while running cell {cell or '?'}" + (f" ({detail})" if detail else "")
        ) from None
    except CellTimeoutError:
        cell = _mark_failed_cell(output_path, f"this cell timed out after {timeout:g} s")
        raise NotebookExecutionError(
            f"cell {cell or '?'} timed out after {timeout:g} s (the limit per cell is "
            "[respond] runbook_timeout)"
        ) from None
    except NoSuchKernel:
        raise NotebookExecutionError(
            f"kernel '{kernel}' is not installed; set [respond] kernel in opsloop.toml to one "
            "that `jupyter kernelspec list` shows"
        ) from None
    finally:
        _end_kernel_processes(groups, tag)
        kernel_log.unlink(missing_ok=True)
    return output_path


# ----------------------------------------------------------------------------- helpers
def _quiet_loggers() -> None:
    """papermill and nbclient log failures we report ourselves; keep them off stderr."""
    logger = logging.getLogger("papermill")
    if not any(isinstance(h, logging.NullHandler) for h in logger.handlers):
        logger.addHandler(logging.NullHandler())


def _kernel_manager_class(log_path: Path, groups: list[int], tag: str) -> type:
    """A kernel manager whose kernel process writes its own stdout/stderr to ``log_path``,
    whose process group is appended to ``groups`` and whose environment carries ``tag``.

    The kernel's start-up warnings stay out of the CLI's output, and the last line of the
    log explains a kernel that died (a segfault, a fatal error). jupyter_client starts the
    kernel in a session of its own, so the group holds the kernel and every process it
    started that did not leave it; the tag finds the ones that did (``!cmd &`` runs in a
    pty session of its own).
    """
    from jupyter_client.manager import AsyncKernelManager

    class RunbookKernelManager(AsyncKernelManager):  # type: ignore[misc]
        async def _async_launch_kernel(self, kernel_cmd: list[str], **kw: Any) -> None:
            kw["env"] = {**(kw.get("env") or os.environ), KERNEL_TAG_ENV: tag}
            with log_path.open("ab") as handle:
                kw.setdefault("stdout", handle)
                kw.setdefault("stderr", handle)
                await super()._async_launch_kernel(kernel_cmd, **kw)
            pid = getattr(getattr(self.provisioner, "process", None), "pid", None)
            with contextlib.suppress(OSError, TypeError, AttributeError):  # Windows: no getpgid
                pgid = os.getpgid(pid)  # type: ignore[arg-type]
                if pgid != os.getpgrp():  # never our own group
                    groups.append(pgid)

    return RunbookKernelManager


def _end_kernel_processes(groups: list[int], tag: str) -> None:
    """Kill every process the run's kernels left behind once the run is over.

    A kernel that died or was shut down after a timeout leaves the processes it started
    (``subprocess.Popen(["sleep", "300"])``, ``!sleep 300 &``) running with PPID 1. They
    die here: each kernel's process group, then (where ``/proc`` exists) every process of
    this user whose environment carries the run's tag.
    """
    if not hasattr(os, "killpg"):  # Windows: no process groups
        return
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
    for pid in _tagged_processes(tag):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _tagged_processes(tag: str) -> list[int]:
    """Processes whose environment holds ``KERNEL_TAG_ENV=tag`` (Linux /proc; else none)."""
    proc = Path("/proc")
    if not (proc / "self" / "environ").exists():
        return []
    marker = f"{KERNEL_TAG_ENV}={tag}".encode()
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone, or another user's
            continue
        if marker in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


class _ScrubbedFile:
    """A papermill I/O handler that writes a notebook with live secrets scrubbed.

    papermill saves the notebook after every cell; without this, a secret printed by a
    cell sits on disk until the run ends (or for good, if the process is killed).
    """

    @staticmethod
    def _path(path: str) -> Path:
        return Path(path[len(_SCRUBBED) :])

    def read(self, path: str) -> str:
        return self._path(path).read_text(encoding="utf-8")

    def listdir(self, path: str) -> list[str]:
        return [str(p) for p in self._path(path).iterdir()]

    def write(self, buf: str, path: str) -> None:
        from opsloop.redact import active_scrubber

        target = self._path(path)
        scrubber = active_scrubber()
        if scrubber:
            buf = json.dumps(scrubber.value(json.loads(buf)), indent=1, ensure_ascii=False)
        partial = target.with_name(target.name + ".tmp")
        partial.write_text(buf, encoding="utf-8")
        os.replace(partial, target)

    def pretty_path(self, path: str) -> str:
        return str(self._path(path))


def _register_scrubbed_io() -> None:
    from papermill.exceptions import PapermillException
    from papermill.iorw import papermill_io

    try:
        handler = papermill_io.get_handler(_SCRUBBED + "run.ipynb")
    except PapermillException:  # no local handler either
        handler = None
    if not isinstance(handler, _ScrubbedFile):
        papermill_io.register(_SCRUBBED, _ScrubbedFile())


def _kernel_log_tail(log_path: Path) -> str:
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    useful = [ln.strip() for ln in lines if ln.strip() and not any(n in ln for n in _NOISE)]
    return useful[-1][:200] if useful else ""


def _mark_failed_cell(path: Path, message: str | None) -> int | None:
    """The failed cell's number in the runbook (1-based, injected cells not counted).

    For a dead or hung kernel (``message`` given) the cell is also marked failed in the
    saved notebook, with an error output, and the cells after it are marked not run, so a
    person opening the notebook sees where it stopped.
    """
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    cells = nb.get("cells", [])
    index = None
    for i, cell in enumerate(cells):
        meta = cell.get("metadata", {}).get("papermill", {})
        if meta.get("exception") is True or meta.get("status") == "failed":
            index = i
            break
        if meta.get("start_time"):
            index = i  # the last cell that started
    if index is None:
        return None
    number = sum(1 for c in cells[: index + 1] if not _INJECTED & set(_tags(c)))
    if message is None:
        return number
    cell = cells[index]
    cell.setdefault("metadata", {}).setdefault("papermill", {}).update(
        status="failed", exception=True
    )
    cell.setdefault("outputs", []).append(
        {
            "output_type": "error",
            "ename": "RunbookKernelError",
            "evalue": message,
            "traceback": [f"RunbookKernelError: {message}"],
        }
    )
    for later in cells[index + 1 :]:
        meta = later.get("metadata", {}).get("papermill")
        if isinstance(meta, dict) and not meta.get("start_time"):
            meta["status"] = "pending"
    nb.setdefault("metadata", {}).setdefault("papermill", {})["exception"] = True
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return number


def _tags(cell: dict[str, Any]) -> list[str]:
    return list(cell.get("metadata", {}).get("tags") or [])
