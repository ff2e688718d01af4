"""An executed runbook as one HTML file that opens offline: nbconvert's ``lab`` template
with its CSS and images inline and nothing fetched from a network (no require.js, no
MathJax, no widget renderer from a CDN).

A reviewer opens ``<run id>.html`` in any browser, on a laptop without network, and sees
the notebook as it ran: Markdown, tables, plots. nbconvert is imported only here.
"""

from __future__ import annotations

import contextlib
import re
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


def prepare_in_background() -> threading.Thread:
    """Import nbconvert and build the exporter in a daemon thread, so the work overlaps a
    kernel's start-up instead of adding to the run (:func:`to_html` waits for it)."""

    def build() -> None:
        with contextlib.suppress(Exception):  # to_html reports the same error, if any
            _exporter()

    thread = threading.Thread(target=build, name="opsloop-html-exporter", daemon=True)
    thread.start()
    return thread


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
