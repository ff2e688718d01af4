"""An executed runbook as one HTML file that opens offline: nbconvert's ``lab`` template
with its CSS and images inline and nothing fetched from a network (no require.js, no
MathJax, no widget renderer from a CDN).

A reviewer opens ``<run id>.html`` in any browser, on a laptop without network, and sees
the notebook as it ran: Markdown, tables, plots. nbconvert is imported only here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

#: Any tag that would load something from elsewhere: ``<script src=http...>``,
#: ``<link href=//...>``; removed after rendering as a last line of defence.
_REMOTE = re.compile(
    r"""<(script|link)\b[^>]*\b(?:src|href)\s*=\s*["']?(?:https?:)?//[^>]*>(?:\s*</script>)?""",
    re.IGNORECASE,
)
#: Anything else that would fetch: a CSS ``@import``/``url()`` or a JS ``import()`` of a URL.
_FETCH = re.compile(r"""(?:@import|url\(|import\()\s*["']?(?:https?:)?//[^"')\s]*""", re.IGNORECASE)
_TEMPLATE_DIR = Path(__file__).resolve().parent / "html_template"


def html_path_for(notebook: Path) -> Path:
    """Where the HTML copy of ``notebook`` goes: beside it, ``.ipynb`` -> ``.html``."""
    name = notebook.name
    stem = name[: -len(".ipynb")] if name.endswith(".ipynb") else notebook.stem
    return notebook.with_name(stem + ".html")


def remote_assets(html: str) -> list[str]:
    """Every ``<script>``/``<link>`` tag, CSS ``@import``/``url()`` or JS ``import()`` in
    ``html`` that would load something from a network."""
    found = [m.group(0) for m in _REMOTE.finditer(html)]
    return found + [m.group(0) for m in _FETCH.finditer(html)]


_LOCK = threading.Lock()
_RENDER_LOCK = threading.Lock()  # one exporter per process: renders take turns
_EXPORTER: Any = None


def _exporter() -> Any:
    """The HTML exporter with its template loaded, built once per process (importing
    nbconvert takes about 0.5 s of CPU)."""
    global _EXPORTER
    with _LOCK:
        if _EXPORTER is None:
            from jinja2 import FileSystemBytecodeCache
            from nbconvert import HTMLExporter

            exporter = HTMLExporter(  # type: ignore[no-untyped-call]
                template_name="offline",
                extra_template_basedirs=[str(_TEMPLATE_DIR)],
                embed_images=True,
            )
            # Compiling the lab templates takes about 0.4 s of CPU per process; Jinja's
            # bytecode cache (a per-user folder under the system temp dir, mode 0700)
            # keeps the compiled code for the next run.
            exporter.environment.bytecode_cache = FileSystemBytecodeCache()
            # One tiny render loads every template and compiles the Python highlighter's
            # regular expressions (about 0.3 s), here rather than after the run.
            from nbformat import v4

            tiny = v4.new_notebook(cells=[v4.new_code_cell("x = 1")])  # type: ignore[no-untyped-call]
            exporter.from_notebook_node(tiny)
            _EXPORTER = exporter
        return _EXPORTER


class HtmlWorker:
    """A child process that builds the exporter while the kernel runs, then renders the
    executed notebook when asked: the about 0.8 s of CPU it takes to import nbconvert and
    compile its templates and highlighter overlaps the run instead of following it.

    A process, not a thread: importing nbconvert in a thread while papermill's kernel
    manager imports IPython races in the import machinery. Start it before any secret is
    put into the environment; it only ever receives the path of a scrubbed notebook.
    """

    def __init__(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "opsloop.notebook_html"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def export(self, notebook: Path, timeout: float = 120) -> Path:
        """Write the HTML copy of ``notebook`` beside it; OpsloopError when that failed."""
        from opsloop.errors import OpsloopError

        try:
            out, err = self._proc.communicate(f"{notebook}\n", timeout=timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise OpsloopError(f"the HTML export took more than {timeout:g} s") from None
        lines = [ln for ln in out.splitlines() if ln.strip()]
        if self._proc.returncode != 0 or not lines:
            why = [ln for ln in err.splitlines() if ln.strip()]
            raise OpsloopError(why[-1] if why else f"exit code {self._proc.returncode}")
        return Path(lines[-1])

    def close(self) -> None:
        """Stop the worker if it still runs (a run that was interrupted)."""
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()


def to_html(notebook: str | dict[str, Any]) -> str:
    """A notebook (nbformat 4 JSON text or dict) as one self-contained HTML page."""
    import json

    from nbformat import v4

    exporter = _exporter()
    text = notebook if isinstance(notebook, str) else json.dumps(notebook)
    # v4.reads joins the line lists without validating: the notebook is one opsloop wrote,
    # and compiling nbformat's JSON schema costs more than the rendering itself.
    node = v4.reads(text)  # type: ignore[no-untyped-call]
    with _RENDER_LOCK:
        body, _ = exporter.from_notebook_node(node)
    return _REMOTE.sub("", body)


def export_html(notebook: Path, target: Path | None = None) -> Path:
    """Write the HTML copy of an executed notebook (default: beside it); return its path.

    Written under a temporary name and renamed, like the notebook itself.
    """
    target = target or html_path_for(notebook)
    html = to_html(notebook.read_text(encoding="utf-8"))
    partial = target.with_name(f".{target.name}.partial")
    partial.write_text(html, encoding="utf-8")
    partial.replace(target)
    return target


def _main() -> int:
    """The worker: build the exporter, then export the notebook whose path comes on stdin."""
    _exporter()
    line = sys.stdin.readline().strip()
    if not line:
        return 0
    print(export_html(Path(line)))
    return 0


if __name__ == "__main__":
    # nbconvert imports jsonschema; its optional IRI checker (rfc3987-syntax) builds 38 Lark
    # grammars at import, about 2 s of CPU, for format checks no rendering makes.
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    sys.exit(_main())
