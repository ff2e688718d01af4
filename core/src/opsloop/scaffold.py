"""``opsloop plugins new``: a pip-installable plugin package for one stage, tests passing.

The package follows the plugin contract (docs/writing-a-plugin.md): ``plugin.py`` holds
only hook implementations, ``settings.py`` the settings model, ``checks.py`` what
``opsloop doctor`` checks, and a test drives the stage's hook through the core's own code
path with the fixtures of :mod:`opsloop.testing`. The templates are package data
(``opsloop/plugin_template/``: ``common/`` plus one folder per stage), filled in with
:class:`string.Template`; a template file's path may hold ``__package__`` and ``__name__``.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from string import Template

from opsloop.errors import OpsloopError, did_you_mean
from opsloop.interfaces import STAGES
from opsloop.names import safe_name


@dataclass(frozen=True)
class StageTemplate:
    """What the package made for one stage implements, depends on and is configured by."""

    hooks: tuple[str, ...]
    summary: str
    dependencies: tuple[str, ...] = ()
    settings_example: str = ""


#: One template per stage: the natural first hooks of a plugin for it.
TEMPLATES: dict[str, StageTemplate] = {
    "core": StageTemplate(
        ("register_commands",),
        "adds `opsloop {name} recent`, the project's newest records",
        ("typer>=0.12",),
        "limit = 10                     # records `opsloop {name} recent` shows",
    ),
    "ingest": StageTemplate(
        ("register_sources", "load_source"),
        "loads CSV files into the project's DuckDB warehouse",
        ("duckdb>=1.0",),
        'sources = {{ orders = "landing/orders.csv" }}   # source name -> CSV file\n'
        'dataset = "raw"',
    ),
    "registry": StageTemplate(
        ("model_store",),
        "a model registry kept in memory (replace it with your registry's API)",
        (),
        "active = true                  # false: leave model_store to another plugin",
    ),
    "serve": StageTemplate(
        ("start_server",),
        "a small scoring server: POST /predict, GET /health",
        ("pandas>=2",),
        "max_body_bytes = 1000000       # larger requests are refused with 413",
    ),
    "monitor": StageTemplate(
        ("register_drift_detectors",),
        "a mean-shift drift detector",
        ("pandas>=2",),
        "threshold = 0.5                # drift: mean moved by this many reference std devs",
    ),
    "guard": StageTemplate(
        ("register_scanners",),
        "a regular-expression scanner that redacts or blocks",
        (),
        r"patterns = {{ account_id = '\bACCT-\d{{6}}\b' }}" '\nverdict = "redact"',
    ),
    "respond": StageTemplate(
        ("register_notifiers",),
        "a notifier that appends alerts to a JSON-lines file",
        (),
        'file = "{name}-alerts.jsonl"   # under the project home\nmin_severity = "warning"',
    ),
    "jupyter": StageTemplate(
        ("register_checks",),
        "checks that the Jupyter kernel its notebooks need is installed",
        ("jupyter-client>=8",),
        'kernel = "python3"             # default: [respond] kernel',
    ),
}

#: The built-in plugins' names: a plugin named like one would fail to load.
RESERVED = frozenset({"core", "respond", "papermill", "registry"})


@dataclass(frozen=True)
class Scaffold:
    """A package written by :func:`new_plugin`."""

    name: str
    stage: str
    folder: Path
    files: tuple[str, ...]

    @property
    def hooks(self) -> tuple[str, ...]:
        return TEMPLATES[self.stage].hooks


def check_name(name: str, taken: Iterable[str] = ()) -> str:
    """``name`` when it can name a plugin, its package and its folder; else one line."""
    safe_name(name, "plugin name")
    if not name.isidentifier() or name != name.lower():
        hint = name.lower().replace("-", "_").replace(".", "_")
        raise OpsloopError(
            f"plugin name '{name}' must be a Python identifier in lower case (it becomes the "
            f"package opsloop_{hint}): letters, digits and '_', e.g. '{hint}'"
        )
    if name in RESERVED:
        raise OpsloopError(
            f"'{name}' is the name of a built-in plugin; pick another name, e.g. 'my_{name}'"
        )
    if name in set(taken):
        raise OpsloopError(
            f"a plugin named '{name}' is already installed (see `opsloop plugins`); "
            "pick another name"
        )
    return name


def check_stage(stage: str) -> str:
    if stage not in TEMPLATES:
        raise OpsloopError(
            f"unknown stage '{stage}'"
            + did_you_mean(stage, STAGES)
            + f" (stages: {', '.join(STAGES)})"
        )
    return stage


def _template_files(stage: str) -> dict[str, Traversable]:
    """Relative output path (with placeholders) -> template; the stage's override common's."""
    root = resources.files("opsloop").joinpath("plugin_template")
    found: dict[str, Traversable] = {}

    def walk(folder: Traversable, prefix: str) -> None:
        for item in sorted(folder.iterdir(), key=lambda t: t.name):
            if item.is_dir():
                walk(item, f"{prefix}{item.name}/")
            elif item.name.endswith(".tmpl"):
                found[prefix + item.name.removesuffix(".tmpl")] = item

    walk(root.joinpath("common"), "")
    walk(root.joinpath(stage), "")
    return found


def render(name: str, stage: str) -> dict[str, str]:
    """Every file of the package for plugin ``name`` of ``stage``: relative path -> text."""
    template = TEMPLATES[check_stage(stage)]
    package = f"opsloop_{name}"
    dependencies = ("opsloop>=0.1", "pydantic>=2.7", *template.dependencies)
    values = {
        "name": name,
        "package": package,
        "dist": f"opsloop-{name.replace('_', '-')}",
        "env_name": name.upper(),
        "stage": stage,
        "summary": template.summary.format(name=name),
        "hooks": ", ".join(template.hooks),
        "dependencies": "".join(f'    "{d}",\n' for d in dependencies),
        "settings_example": template.settings_example.format(name=name),
    }
    files: dict[str, str] = {}
    for relative, source in _template_files(stage).items():
        path = relative.replace("__package__", package).replace("__name__", name)
        try:
            files[path] = Template(source.read_text(encoding="utf-8")).substitute(values)
        except (KeyError, ValueError) as exc:  # a broken template is opsloop's bug
            raise RuntimeError(f"plugin template {stage}/{relative}: {exc!r}") from None
    return files


def new_plugin(name: str, stage: str, parent: Path, *, taken: Iterable[str] = ()) -> Scaffold:
    """Write the package for plugin ``name`` into ``parent/opsloop-<name>``, all or nothing.

    The files are written into a hidden folder beside the target and renamed into place
    at the end, so a failure leaves nothing behind; an existing target is never touched.
    """
    check_name(name, taken)
    files = render(name, stage)
    parent = parent.expanduser().resolve()
    target = parent / f"opsloop-{name.replace('_', '-')}"
    if target.exists() or target.is_symlink():
        raise OpsloopError(f"{target} already exists; remove it or choose another --path")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OpsloopError(f"cannot create {parent}: {exc.strerror}") from None
    staging = parent / f".{target.name}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        staging.mkdir()
        for relative, text in files.items():
            path = staging / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        if target.exists():  # made by someone else meanwhile: never replace it
            raise OpsloopError(f"{target} already exists; remove it or choose another --path")
        os.rename(staging, target)
    except OSError as exc:
        raise OpsloopError(f"cannot write {target}: {exc.strerror or exc}") from None
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return Scaffold(name, stage, target, tuple(sorted(files)))
