"""The strict runbook engine: typed parameters checked before a kernel starts, secret
parameters never written to disk, and a dead or hung kernel turned into a failed run.

A runbook is a Jupyter notebook with a cell tagged ``parameters``. Its assignments declare
the parameters (``window: int = 7  # help``); :func:`coerce_parameters` checks and converts
what a person passes, :func:`run_runbook` executes the notebook through the
``execute_notebook`` hook (papermill by default) and records a :class:`RunbookRun`.

Nothing here imports papermill: listing and inspecting runbooks stays fast.
"""

from __future__ import annotations

import ast
import contextlib
import dataclasses
import io
import json
import os
import re
import shutil
import tempfile
import threading
import tokenize
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsloop.environ import temporary_environ
from opsloop.errors import OpsloopError, ParameterError, did_you_mean
from opsloop.interfaces import RunbookSpec
from opsloop.names import is_safe_name
from opsloop.records import Incident, IncidentUpdate, RunbookRun, Signal, new_id, utcnow
from opsloop.redact import (
    Scrubber,
    is_secret_key,
    redact,
    redact_text,
    secret_scope,
)

if TYPE_CHECKING:
    from opsloop.notebook_html import HtmlWorker
    from opsloop.project import Project

#: The parameter types a runbook may declare.
PARAMETER_TYPES: tuple[str, ...] = ("str", "int", "float", "bool", "list", "dict")
#: Environment variable naming the private file that carries secret parameters into the
#: kernel (the path, never a value); the secrets cell reads the file and deletes it.
SECRETS_FILE_ENV = "OPSLOOP_SECRETS_FILE"
#: Tag of the cell opsloop inserts to read secret parameters from that file.
SECRETS_CELL_TAG = "opsloop-secrets"
#: The output type a runbook's declared result is displayed as (see :func:`runbook_result`).
RESULT_MIME = "application/vnd.opsloop.result+json"
#: What a notebook is (metadata ``opsloop.kind``): an on-call runbook or a report.
KINDS: tuple[str, ...] = ("runbook", "report")
#: The environment variable that tells the kernel the id of the run it executes.
RUN_ID_ENV = "OPSLOOP_RUN_ID"

_TRUE = frozenset({"true", "yes", "y", "on", "1"})
_FALSE = frozenset({"false", "no", "n", "off", "0"})
_PY_TYPES: dict[type, str] = {bool: "bool", int: "int", float: "float", str: "str"}
_TYPE_ALIASES = {"List": "list", "Dict": "dict", "Sequence": "list", "Mapping": "dict"}

# One run at a time per process: the secrets file's path sits in os.environ while a kernel
# starts, and papermill changes the working directory of the whole process.
_RUN_LOCK = threading.Lock()


@dataclass(frozen=True)
class ParameterSpec:
    """One parameter a runbook declares in its ``parameters`` cell."""

    name: str
    type: str  # one of PARAMETER_TYPES
    default: Any = None
    required: bool = False
    help: str = ""
    secret: bool = False


class NotebookExecutionError(OpsloopError):
    """A runbook notebook failed while running: a cell raised, the kernel died or hung.

    Raised by ``execute_notebook`` implementations; :func:`run_runbook` turns it into a
    failed :class:`RunbookRun` whose ``error`` is this one-line message.
    """

    exit_code = 1


# ----------------------------------------------------------------------------- discovery
def shipped_runbooks_dir() -> Path:
    """The runbook notebooks shipped inside the opsloop package."""
    return Path(__file__).resolve().parent / "notebooks" / "runbooks"


def shipped_reports_dir() -> Path:
    """The report notebooks shipped inside the opsloop package (run like runbooks)."""
    return Path(__file__).resolve().parent / "notebooks" / "reports"


def read_notebook(path: Path) -> dict[str, Any]:
    """A notebook file as JSON; an unreadable file is a one-line OpsloopError."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise OpsloopError(f"{path}: cannot read the notebook: {exc.strerror}") from None
    except ValueError as exc:
        raise OpsloopError(f"{path}: not a notebook (invalid JSON: {exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise OpsloopError(f"{path}: not a notebook (no 'cells' list)")
    return data


def _source(cell: Mapping[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _summary(nb: Mapping[str, Any]) -> str:
    meta = nb.get("metadata", {}).get("opsloop", {})
    if isinstance(meta, dict) and meta.get("summary"):
        return str(meta["summary"])
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "markdown":
            continue
        for line in _source(cell).splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return ""


def runbook_spec(path: Path) -> RunbookSpec:
    """The RunbookSpec of one notebook: name from the file stem, summary, secrets and kind
    from metadata ``opsloop.summary`` / ``opsloop.secret_parameters`` / ``opsloop.kind``
    (default: ``report`` for a notebook in a ``reports`` folder, else ``runbook``)."""
    path = Path(path)
    kind = "report" if path.parent.name == "reports" else "runbook"
    try:
        nb = read_notebook(path)
    except OpsloopError as exc:
        return RunbookSpec(name=path.stem, path=path, summary=f"unreadable: {exc}", kind=kind)
    meta = nb.get("metadata", {}).get("opsloop", {})
    secrets = meta.get("secret_parameters", []) if isinstance(meta, dict) else []
    if isinstance(meta, dict) and meta.get("kind") in KINDS:
        kind = str(meta["kind"])
    return RunbookSpec(
        name=path.stem,
        path=path,
        summary=_summary(nb),
        secret_parameters=tuple(str(s) for s in secrets or ()),
        kind=kind,
        destructive=_destructive(meta if isinstance(meta, dict) else {}, nb),
    )


def _destructive(meta: Mapping[str, Any], nb: Mapping[str, Any]) -> bool:
    """Metadata ``opsloop.destructive: true``, or a parameter ``approved_by`` (the library's
    convention for a runbook whose purpose is a destructive action)."""
    if "destructive" in meta:
        return bool(meta["destructive"])
    found = _parameters_cell(nb)
    return bool(found and re.search(r"^approved_by\s*[:=]", _source(found[1]), re.M))


def runbook_specs_in(folder: Path) -> list[RunbookSpec]:
    """A RunbookSpec for every ``*.ipynb`` in ``folder`` (none when it does not exist)."""
    if not folder.is_dir():
        return []
    return [
        runbook_spec(p)
        for p in sorted(folder.glob("*.ipynb"))
        if not p.name.startswith((".", "_")) and ".ipynb_checkpoints" not in p.parts
    ]


def list_runbooks(project: Project) -> list[RunbookSpec]:
    """Every runbook the plugins register, sorted by name (one per name: see
    opsloop.registrations)."""
    specs: list[RunbookSpec] = project.collect("register_runbooks")
    return sorted(specs, key=lambda s: s.name)


def get_runbook(project: Project, name: str) -> RunbookSpec:
    """The runbook called ``name``; an unknown name is a ParameterError with a hint."""
    specs = {s.name: s for s in list_runbooks(project)}
    if name in specs:
        return specs[name]
    raise ParameterError(
        f"no runbook named '{name}'"
        + did_you_mean(name, specs)
        + f" (runbooks: {', '.join(specs) or 'none'})"
    )


# ----------------------------------------------------------------------------- parameters
def _parameters_cell(nb: Mapping[str, Any]) -> tuple[int, Mapping[str, Any]] | None:
    """The first cell tagged ``parameters`` (as papermill picks it), with its index."""
    for index, cell in enumerate(nb.get("cells", [])):
        if "parameters" in (cell.get("metadata", {}).get("tags") or []):
            return index, cell
    return None


def _comments(source: str) -> dict[int, str]:
    """Line number -> comment text, for help strings."""
    out: dict[int, str] = {}
    with contextlib.suppress(tokenize.TokenError, SyntaxError):
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT:
                out[tok.start[0]] = tok.string.lstrip("#").strip()
    return out


def _annotation(node: ast.expr | None) -> tuple[str | None, bool]:
    """(type name, allows None) for an annotation; (None, False) when there is none."""
    if node is None:
        return None, False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return _annotation(ast.parse(node.value, mode="eval").body)
    if isinstance(node, ast.Constant) and node.value is None:
        return "none", True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        left, _ = _annotation(node.left)
        right, _ = _annotation(node.right)
        kinds = {left, right} - {"none"}
        if len(kinds) == 1 and "none" in (left, right):
            return kinds.pop(), True
        raise ValueError(ast.unparse(node))
    name = node.value if isinstance(node, ast.Subscript) else node
    base = name.attr if isinstance(name, ast.Attribute) else getattr(name, "id", None)
    if isinstance(node, ast.Subscript) and base == "Optional":
        inner, _ = _annotation(node.slice)
        return inner, True
    base = _TYPE_ALIASES.get(str(base), base)
    if base in PARAMETER_TYPES:
        return str(base), False
    raise ValueError(ast.unparse(node))


def _type_of(value: Any) -> str | None:
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return _PY_TYPES.get(type(value))


def _fits(value: Any, kind: str) -> bool:
    actual = _type_of(value)
    return actual == kind or (kind == "float" and actual == "int")


def inspect_parameters(spec: RunbookSpec) -> dict[str, ParameterSpec]:
    """The parameters the runbook's ``parameters`` cell declares, in order.

    ``name: type = default  # help``; without an annotation the type comes from the
    default. A default of None with a non-Optional annotation makes the parameter required.
    """
    found = _parameters_cell(read_notebook(spec.path))
    if found is None:
        return {}
    lines = _source(found[1]).splitlines()
    # IPython magics and shell escapes are not Python: blank them, keep line numbers.
    source = "\n".join("" if ln.lstrip().startswith(("%", "!")) else ln for ln in lines)
    where = f"runbook '{spec.name}'"
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ParameterError(
            f"{where}: its parameters cell is not valid Python (line {exc.lineno}: {exc.msg})"
        ) from None
    comments = _comments(source)
    secrets = set(spec.secret_parameters)
    out: dict[str, ParameterSpec] = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names, annotation, value = [stmt.target.id], stmt.annotation, stmt.value
        elif isinstance(stmt, ast.Assign) and all(isinstance(t, ast.Name) for t in stmt.targets):
            names = [t.id for t in stmt.targets if isinstance(t, ast.Name)]
            annotation, value = None, stmt.value
        else:
            continue
        try:
            kind, optional = _annotation(annotation)
        except (ValueError, SyntaxError) as exc:
            raise ParameterError(
                f"{where}: parameter '{names[0]}' has unsupported type '{exc}'; use one of "
                f"{', '.join(PARAMETER_TYPES)} (optionally '| None')"
            ) from None
        literal = True
        try:
            default = ast.literal_eval(value) if value is not None else None
        except (ValueError, SyntaxError, TypeError):
            default, literal = None, False
        if isinstance(default, tuple):
            default = list(default)
        if kind is None or kind == "none":
            kind = (_type_of(default) if literal else None) or "str"
            optional = True
        elif literal and default is not None and not _fits(default, kind):
            raise ParameterError(
                f"{where}: parameter '{names[0]}' is declared {kind} but its default is {default!r}"
            )
        # ``x: int`` (no value) or ``x: int = None``: the caller must pass it.
        required = value is None or (literal and default is None and not optional)
        end = stmt.end_lineno or stmt.lineno
        help_text = comments.get(stmt.lineno) or comments.get(end, "")
        for name in names:
            out[name] = ParameterSpec(
                name=name,
                type=kind,
                default=default,
                required=required,
                help=help_text,
                secret=name in secrets or is_secret_key(name),
            )
    return out


def _shown(param: ParameterSpec, value: Any) -> str:
    if param.secret:
        return f"a secret {type(value).__name__}"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _coerce(runbook: str, param: ParameterSpec, value: Any) -> Any:
    """``value`` converted to the parameter's type; strings from a command line are parsed."""
    if value is None:
        if param.required or param.default is not None:
            raise ParameterError(
                f"runbook '{runbook}': parameter '{param.name}' must be {param.type}, got None"
            )
        return None
    kind = param.type
    hint = {"list": " (a JSON list or a,b,c)", "dict": " (a JSON object)"}.get(kind, "")
    bad = ParameterError(
        f"runbook '{runbook}': parameter '{param.name}' must be {kind}{hint}, "
        f"got {_shown(param, value)}"
    )
    if isinstance(value, str) and kind != "str":
        text = value.strip()
        try:
            if kind == "int":
                return int(text, 10)
            if kind == "float":
                return float(text)
            if kind == "bool":
                if text.lower() in _TRUE:
                    return True
                if text.lower() in _FALSE:
                    return False
                raise bad
            if kind == "list":
                if text.startswith("["):
                    parsed = json.loads(text)
                else:
                    parsed = [item.strip() for item in text.split(",") if item.strip()]
            else:
                parsed = json.loads(text)
        except ValueError:
            raise bad from None
        if _type_of(parsed) != kind:
            raise bad
        return parsed
    if not _fits(value, kind):
        raise bad
    if kind == "float":
        return float(value)
    if kind == "list":
        return list(value)
    return value


def coerce_parameters(spec: RunbookSpec, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Check names, types and required parameters; return the values converted to their
    declared types. Raise ParameterError (one line) on the first problem."""
    declared = inspect_parameters(spec)
    listing = ", ".join(f"{p.name}: {p.type}" for p in declared.values()) or "none"
    out: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in declared:
            raise ParameterError(
                f"runbook '{spec.name}' has no parameter '{name}'"
                + did_you_mean(name, declared)
                + f" (parameters: {listing})"
            )
        out[name] = _coerce(spec.name, declared[name], value)
    missing = [p for p in declared.values() if p.required and out.get(p.name) is None]
    if missing:
        names = ", ".join(f"'{p.name}' ({p.type})" for p in missing)
        plural = "s" if len(missing) > 1 else ""
        raise ParameterError(f"runbook '{spec.name}': missing required parameter{plural} {names}")
    return out


# ----------------------------------------------------------------------------- secrets
def _secrets_cell(names: list[str], nbformat_minor: int) -> dict[str, Any]:
    lines = [
        "# Secret parameters: opsloop passes them in a private file that this cell reads and",
        "# deletes; their values are never written into this notebook.",
        "def _opsloop_secrets():",
        "    import json, os",
        f"    path = os.environ.pop({SECRETS_FILE_ENV!r}, '')",
        "    try:",
        "        with open(path, encoding='utf-8') as handle:",
        "            return json.load(handle)",
        "    except OSError:",
        "        raise RuntimeError(",
        "            'secret parameters did not reach the kernel; run this runbook with '",
        "            '`opsloop runbook run`, which passes them in a private file'",
        "        ) from None",
        "    finally:",
        "        if path and os.path.exists(path):",
        "            os.unlink(path)",
        "",
        "_opsloop_values = _opsloop_secrets()",
        *(f"{name} = _opsloop_values[{name!r}]" for name in names),
        "del _opsloop_secrets, _opsloop_values",
    ]
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {"tags": [SECRETS_CELL_TAG]},
        "outputs": [],
        "source": "\n".join(lines),
    }
    if nbformat_minor >= 5:
        cell["id"] = SECRETS_CELL_TAG
    return cell


def _private_dir() -> Path:
    """A new folder only this user can read: on /dev/shm (memory) when there is one."""
    shm = Path("/dev/shm")
    where = str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None
    return Path(tempfile.mkdtemp(prefix="opsloop-secrets-", dir=where))  # mode 0700


@contextlib.contextmanager
def _secrets_file(secrets: Mapping[str, Any]) -> Iterator[None]:
    """Write the secrets to a private file (0600, in a 0700 folder, in memory where the
    system allows) and name it in os.environ while the block runs (caller holds the lock).

    The kernel inherits the variable, so its ``/proc/<pid>/environ`` shows a path, never a
    value; the secrets cell deletes the file once read, and this block deletes it anyway.
    """
    if not secrets:
        yield
        return
    folder = _private_dir()
    path = folder / "secrets.json"
    old = os.environ.get(SECRETS_FILE_ENV)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(dict(secrets), handle)
        os.environ[SECRETS_FILE_ENV] = str(path)
        yield
    finally:
        if old is None:
            os.environ.pop(SECRETS_FILE_ENV, None)
        else:
            os.environ[SECRETS_FILE_ENV] = old
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------- running
def _one_line(exc: BaseException, scrubber: Scrubber) -> str:
    """An exception as one line (its message, or ``Type: first line``), secrets masked."""
    message = redact_text(scrubber.text(str(exc)))
    if isinstance(exc, OpsloopError):
        text = message
    else:
        first = next((ln.strip() for ln in message.splitlines() if ln.strip()), "")
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    text = " ".join(text.split())
    text = text if len(text) <= 500 else text[:497] + "..."
    return scrubber.text(text)  # a secret cut by the line joining or the length limit


def _prepare(spec: RunbookSpec, target: Path, secret_names: list[str], run: dict[str, Any]) -> None:
    """Write the notebook to execute: the runbook plus run metadata and the secrets cell."""
    nb = read_notebook(spec.path)
    nb.setdefault("metadata", {}).setdefault("opsloop", {})
    if not isinstance(nb["metadata"]["opsloop"], dict):
        nb["metadata"]["opsloop"] = {}
    nb["metadata"]["opsloop"]["run"] = run
    if secret_names:
        found = _parameters_cell(nb)
        index = found[0] + 1 if found else 0
        nb["cells"].insert(index, _secrets_cell(secret_names, int(nb.get("nbformat_minor", 4))))
    target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _finish(produced: Path, target: Path, spec: RunbookSpec, scrubber: Scrubber) -> None:
    """Scrub secrets from the executed notebook and move it to its final name atomically."""
    try:
        nb = scrubber.value(read_notebook(produced))
    except OpsloopError:  # half-written by a dying executor: scrub the text as it is
        text = produced.read_text(encoding="utf-8", errors="replace")
        produced.write_text(scrubber.text(text), encoding="utf-8")
    else:
        pm_meta = nb.get("metadata", {}).get("papermill")
        if isinstance(pm_meta, dict):
            pm_meta["input_path"] = str(spec.path)
            pm_meta["output_path"] = str(target)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
        produced.write_text(text, encoding="utf-8")
    os.replace(produced, target)


def _execute(
    project: Project,
    spec: RunbookSpec,
    run: dict[str, Any],
    plain: dict[str, Any],
    secrets: dict[str, Any],
    timeout: float,
    scrubber: Scrubber,
) -> tuple[str, str | None]:
    """Run the notebook through the ``execute_notebook`` hook: (output path, error or None).

    The notebook is written under a hidden temporary name and renamed when it is complete,
    so no half-written notebook ever carries the final name.
    """
    final = project.path("runbooks", spec.name, f"{run['id']}.ipynb")
    partial = final.with_name(f".{run['id']}.partial.ipynb")
    prepared = final.with_name(f".{run['id']}.input.ipynb")
    error: str | None = None
    produced = partial
    done = False  # stays False when interrupted: the notebook is kept as failed
    try:
        _prepare(spec, prepared, list(secrets), run)
        # the kernel acts for who ran it, and knows its run (never a secret: see above)
        env = {RUN_ID_ENV: run["id"], "OPSLOOP_ACTOR": project.audit.actor}
        with _secrets_file(secrets), temporary_environ(env):
            result = project.hook.execute_notebook(
                project=project,
                input_path=prepared,
                output_path=partial,
                parameters=plain,
                timeout=timeout,
            )
        if result is None:
            raise OpsloopError("no plugin executed the notebook")
        produced = Path(result)
        if not produced.is_file():
            raise OpsloopError(f"the notebook executor wrote no notebook at {produced}")
        done = True
    except Exception as exc:  # noqa: BLE001 - any failure of the notebook is a failed run
        error = _one_line(exc, scrubber)
    finally:
        prepared.unlink(missing_ok=True)
        target = final if done else final.with_name(f"{run['id']}.failed.ipynb")
        output = ""
        if produced.is_file():
            _finish(produced, target, spec, scrubber)
            output = str(target)
        partial.unlink(missing_ok=True)
    return output, error


def _with_conventions(
    project: Project,
    declared: Mapping[str, ParameterSpec],
    given: dict[str, Any],
    incident_id: str | None,
    runbook: str = "",
) -> dict[str, Any]:
    """Fill ``project_dir``, ``incident_id`` and ``output_dir`` (the folder the executed
    notebook goes to) when the runbook declares them."""
    out = dict(given)
    if incident_id and "incident_id" in declared and not out.get("incident_id"):
        out["incident_id"] = incident_id
    if "project_dir" in declared and "project_dir" not in out:
        out["project_dir"] = str(project.root)
    if "output_dir" in declared and not out.get("output_dir"):
        out["output_dir"] = str(project.home / "runbooks" / runbook)
    return out


def _check_incident(project: Project, incident_id: str) -> None:
    try:
        record = project.records.get(incident_id)
    except OpsloopError:
        raise ParameterError(f"no incident with id '{incident_id}'") from None
    if not isinstance(record, Incident):
        raise ParameterError(f"'{incident_id}' is a {record.kind}, not an incident")


def run_runbook(
    project: Project,
    name: str,
    parameters: Mapping[str, Any] | None = None,
    *,
    incident_id: str | None = None,
    timeout: float | None = None,
    secret_parameters: Iterable[str] = (),
) -> RunbookRun:
    """Validate, execute and record one runbook run; a failing notebook is a failed run.

    Parameters are checked before anything is written (ParameterError). The executed copy
    goes to ``<home>/runbooks/<name>/<run id>.ipynb`` (``<run id>.failed.ipynb`` when it
    failed). Secret parameters (declared, named by their name, or listed in
    ``secret_parameters`` for this run) reach the kernel through a private file deleted
    once read, and every form of their values is scrubbed from the notebook, the record,
    the audit entry and the error.
    """
    spec = get_runbook(project, name)
    if not is_safe_name(spec.name):
        raise ParameterError(
            f"runbook name '{spec.name}' is not a safe file name (letters, digits, . _ -)"
        )
    extra = set(secret_parameters)
    if extra:
        spec = dataclasses.replace(
            spec, secret_parameters=tuple(dict.fromkeys([*spec.secret_parameters, *extra]))
        )
    raw = dict(parameters or {})
    named = set(spec.secret_parameters)
    given_secrets = [v for k, v in raw.items() if k in named or is_secret_key(k)]
    with secret_scope(given_secrets):  # no echo of a value passed as secret, even when bad
        return _run_checked(project, spec, raw, incident_id, timeout)


def _run_checked(
    project: Project,
    spec: RunbookSpec,
    raw: dict[str, Any],
    incident_id: str | None,
    timeout: float | None,
) -> RunbookRun:
    declared = inspect_parameters(spec)
    values = coerce_parameters(
        spec, _with_conventions(project, declared, raw, incident_id, spec.name)
    )
    named = values.get("incident_id")
    if incident_id and isinstance(named, str) and named and named != incident_id:
        raise ParameterError(
            f"runbook '{spec.name}': parameter incident_id '{named}' and the incident "
            f"'{incident_id}' differ; pass one of them"
        )
    if incident_id is None and isinstance(named, str):
        incident_id = named or None
    if incident_id:
        _check_incident(project, incident_id)
    limit = float(timeout if timeout is not None else project.config.respond.runbook_timeout)
    if limit <= 0:
        raise ParameterError(f"runbook timeout must be more than 0 seconds, got {limit:g}")

    if not project.hook.execute_notebook.get_hookimpls():
        raise OpsloopError(
            "no plugin executes notebooks; enable the built-in 'papermill' plugin "
            "(check [plugins] disabled and OPSLOOP_DISABLE_PLUGINS)"
        )
    secrets = {n: v for n, v in values.items() if declared[n].secret and v is not None}
    plain = {n: v for n, v in values.items() if n not in secrets}
    with secret_scope(secrets.values()) as scrubber:
        return _run_scoped(
            project, spec, declared, values, secrets, plain, incident_id, limit, scrubber
        )


def _run_scoped(
    project: Project,
    spec: RunbookSpec,
    declared: Mapping[str, ParameterSpec],
    values: dict[str, Any],
    secrets: dict[str, Any],
    plain: dict[str, Any],
    incident_id: str | None,
    limit: float,
    scrubber: Scrubber,
) -> RunbookRun:
    """Execute and record a checked run; every writer here scrubs ``secrets``."""
    names = frozenset(p.name for p in declared.values() if p.secret)
    shown: dict[str, Any] = scrubber.value(redact(values, names))

    project.hook.before_runbook(project=project, runbook=spec, parameters=dict(shown))

    run_id = new_id(RunbookRun.prefix)
    started = utcnow()
    meta = {"id": run_id, "runbook": spec.name, "incident_id": incident_id}
    interrupted: KeyboardInterrupt | None = None
    worker = _html_worker()  # loads the HTML exporter while the kernel runs
    with _RUN_LOCK:
        try:
            output, error = _execute(project, spec, meta, plain, secrets, limit, scrubber)
        except KeyboardInterrupt as exc:  # record the run, then stop as asked
            interrupted, error = exc, "interrupted by the user"
            failed = project.path("runbooks", spec.name, f"{run_id}.failed.ipynb")
            output = str(failed) if failed.is_file() else ""
    result = scrubber.value(_declared_result(output))
    html = "" if interrupted else _export_html(output, worker, scrubber)  # Ctrl-C: stop now
    if worker is not None:
        worker.close()
    run = RunbookRun(
        id=run_id,
        runbook=spec.name,
        input_path=str(spec.path),
        output_path=output,
        parameters=shown,
        status="succeeded" if error is None else "failed",
        incident_id=incident_id,
        error=error,
        started_at=started,
        finished_at=utcnow(),
        result=result,
        html_path=html,
        actor=project.audit.actor,
    )
    project.emit(
        run,
        "runbook.run",
        spec.name,
        after={
            "run_id": run.id,
            "status": run.status,
            "parameters": shown,
            "output_path": output,
            "html_path": html,
            "result": {k: result[k] for k in ("summary", "recommendation") if k in result},
            "incident_id": incident_id,
            "error": error,
        },
    )
    if incident_id:
        note = f"runbook {spec.name} {run.status}" + (f": {error}" if error else "")
        project.emit(
            IncidentUpdate(
                incident_id=incident_id,
                runbook_run_id=run.id,
                note=note,
                actor=project.audit.actor,
            )
        )
    project.hook.after_runbook(project=project, run=run)
    if run.status == "failed" and interrupted is None and not project.detached:
        # the ``runbook-failed`` rule opens an incident (it names no runbook: no loop)
        project.emit(
            Signal(
                source="runbooks",
                type="runbook_failed",
                severity="warning",
                subject=spec.name,
                summary=f"runbook {spec.name} failed: {error}"[:400],
                data={"run_id": run.id, "incident_id": incident_id, "output_path": output},
            )
        )
    if interrupted is not None:
        raise interrupted
    return run


# ----------------------------------------------------------------------------- results
def runbook_result(summary: str = "", recommendation: str = "", **data: Any) -> dict[str, Any]:
    """Declare what this runbook concluded; call it in the notebook's last cell.

    ``summary`` is one line for a person, ``recommendation`` a short verdict (e.g.
    ``"retrain-or-rollback"``), ``data`` any JSON-ready details. It is shown in the
    notebook, stored on the :class:`RunbookRun`, and printed by ``opsloop runbook run``.
    """
    result: dict[str, Any] = json.loads(
        json.dumps({"summary": summary, "recommendation": recommendation, **data}, default=str)
    )
    try:
        from IPython.display import display
    except ImportError:  # not in a notebook: the value is still returned
        return result
    text = "\n".join(f"{k}: {v}" for k, v in result.items() if v not in ("", None, [], {}))
    display({RESULT_MIME: result, "text/plain": text or "(no result)"}, raw=True)  # type: ignore[no-untyped-call]
    return result


#: What :func:`record_hand_run` recorded in this process (a kernel session): the same
#: runbook, parameters, result and notebook -> the run id, so a re-run cell records once.
_HAND_RUNS: dict[str, str] = {}
#: The environment variable Jupyter Server sets in a kernel: the notebook's path.
SESSION_ENV = "JPY_SESSION_NAME"


def _kernel_namespace() -> dict[str, Any]:
    """The variables of the IPython kernel this runs in ({} outside IPython)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython comes with ipykernel
        return {}
    shell = get_ipython()  # type: ignore[no-untyped-call]
    return dict(shell.user_ns) if shell is not None else {}


def record_hand_run(
    project: Project,
    runbook: str,
    result: Mapping[str, Any] | None = None,
    *,
    parameters: Mapping[str, Any] | None = None,
    notebook_path: str = "",
    status: str = "succeeded",
    actor: str = "",
) -> RunbookRun | None:
    """Record a runbook a person ran cell by cell (JupyterLab), like ``run_runbook`` does.

    Under opsloop's own papermill run (``$OPSLOOP_RUN_ID`` set in the kernel) it returns
    None: the engine records that run. Otherwise it stores a :class:`RunbookRun` with
    ``by_hand=True`` and audits it (``runbook.run``, the same shape as the engine's entry):
    the parameters are the runbook's declared parameters as the kernel holds them (or
    ``parameters``), secret ones masked and every secret value scrubbed; the notebook is
    ``notebook_path``, else the one Jupyter Server names (``$JPY_SESSION_NAME``); the actor
    is ``actor``, else ``$JUPYTERHUB_USER``, else the project's actor.

    Once per outcome in a kernel session: calling it again with the same runbook,
    parameters, result and notebook (a re-run of the last cell) returns the run already
    recorded; a different result (say, after an approval click) is a new run.
    """
    if os.environ.get(RUN_ID_ENV):
        return None
    spec = get_runbook(project, runbook)
    declared = inspect_parameters(spec)
    if parameters is None:
        space = _kernel_namespace()
        parameters = {n: space[n] for n in declared if n in space}
    names = frozenset(p.name for p in declared.values() if p.secret) | frozenset(
        n for n in parameters if is_secret_key(n)
    )
    secrets = [v for k, v in parameters.items() if k in names and v not in (None, "")]
    if not notebook_path:
        notebook_path = os.environ.get(SESSION_ENV) or str(
            _kernel_namespace().get("__session__") or ""
        )
    if status not in ("succeeded", "failed"):
        raise ParameterError(f"status must be 'succeeded' or 'failed', got {status!r}")
    with secret_scope(secrets) as scrubber:
        shown: dict[str, Any] = scrubber.value(redact(json_ready(parameters), names))
        declared_result: dict[str, Any] = scrubber.value(json_ready(dict(result or {})))
    key = json.dumps([spec.name, shown, declared_result, status, notebook_path], sort_keys=True)
    if key in _HAND_RUNS:
        try:
            found = project.records.get(_HAND_RUNS[key])
        except OpsloopError:
            found = None
        if isinstance(found, RunbookRun):
            return found
    who = actor or os.environ.get("JUPYTERHUB_USER") or project.audit.actor
    incident_id = shown.get("incident_id") if isinstance(shown.get("incident_id"), str) else ""
    if incident_id:
        try:
            _check_incident(project, incident_id)
        except ParameterError:
            incident_id = ""  # a hand-typed id that is no incident: record the run anyway
    now = utcnow()
    run = RunbookRun(
        runbook=spec.name,
        input_path=str(spec.path),
        output_path=notebook_path,
        parameters=shown,
        status=status,  # type: ignore[arg-type]  # checked above
        incident_id=incident_id or None,
        finished_at=now,
        result=declared_result,
        actor=who,
        by_hand=True,
    )
    project.emit(
        run,
        "runbook.run",
        spec.name,
        after={
            "run_id": run.id,
            "status": run.status,
            "parameters": shown,
            "output_path": notebook_path,
            "result": {
                k: declared_result[k] for k in ("summary", "recommendation") if k in declared_result
            },
            "incident_id": run.incident_id,
            "by_hand": True,
        },
        actor=who,
    )
    if run.incident_id:
        project.emit(
            IncidentUpdate(
                incident_id=run.incident_id,
                runbook_run_id=run.id,
                note=f"runbook {spec.name} {run.status} (run by hand by {who})",
                actor=who,
            ),
            actor=who,
        )
    project.hook.after_runbook(project=project, run=run)
    _HAND_RUNS[key] = run.id
    return run


def json_ready(value: Any) -> Any:
    """``value`` as JSON would keep it (tuples as lists, other objects as their str)."""
    return json.loads(json.dumps(value, default=str))


def read_result(notebook: Mapping[str, Any]) -> dict[str, Any]:
    """The last result a runbook declared in an executed notebook ({} when none)."""
    found: dict[str, Any] = {}
    for cell in notebook.get("cells", []):
        for output in cell.get("outputs", []) or []:
            value = (output.get("data") or {}).get(RESULT_MIME)
            if isinstance(value, dict):
                found = value
    return found


def _html_worker() -> HtmlWorker | None:
    """A process that builds the HTML exporter now (None if it cannot start)."""
    from opsloop.notebook_html import HtmlWorker

    try:
        return HtmlWorker()
    except OSError:
        return None


def _export_html(
    output: str, worker: HtmlWorker | None = None, scrubber: Scrubber | None = None
) -> str:
    """Export the executed notebook to offline HTML beside it ('' when there is no
    notebook), through ``worker`` when there is one, scrubbed of every form of the run's
    secrets. A failed export is a warning, not a failed run: the notebook is the record."""
    if not output:
        return ""
    from opsloop.notebook_html import export_html

    try:
        if worker is not None:
            html = Path(worker.export(Path(output)))
        else:
            html = Path(export_html(Path(output)))
        if scrubber:  # the notebook was scrubbed; the HTML renders it, escaped: scrub again
            html.write_text(scrubber.text(html.read_text(encoding="utf-8")), encoding="utf-8")
        return str(html)
    except Exception as exc:  # noqa: BLE001 - the run happened; only its HTML copy is missing
        import sys

        print(
            f"opsloop: warning: no HTML copy of {output}: {_one_line(exc, scrubber or Scrubber())}",
            file=sys.stderr,
        )
        return ""


def _declared_result(output: str) -> dict[str, Any]:
    """The result declared in the executed (already scrubbed) notebook, or {}."""
    if not output:
        return {}
    try:
        return read_result(read_notebook(Path(output)))
    except OpsloopError:
        return {}


# ----------------------------------------------------------------------------- helpers
def parse_window(window: str) -> tuple[datetime, datetime] | None:
    """A time window for runbooks: ``last-7d`` / ``last-24h`` / ``last-30m`` or
    ``<start>/<end>`` in ISO 8601, as UTC datetimes; None for a plain label or ""."""
    text = window.strip()
    match = re.fullmatch(r"last-(\d+)([dhm])", text)
    if match:
        unit = {"d": "days", "h": "hours", "m": "minutes"}[match.group(2)]
        end = datetime.now(UTC)
        return end - timedelta(**{unit: int(match.group(1))}), end
    left, sep, right = text.partition("/")
    if not sep:
        return None
    try:
        start, stop = datetime.fromisoformat(left.strip()), datetime.fromisoformat(right.strip())
    except ValueError:
        return None
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    stop = stop if stop.tzinfo else stop.replace(tzinfo=UTC)
    return start.astimezone(UTC), stop.astimezone(UTC)
