"""The runbook engine without a kernel: discovery, parameter inspection and coercion, and
every validation error refused before anything is written."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from opsloop import hookimpl
from opsloop.errors import OpsloopError, ParameterError
from opsloop.interfaces import RunbookSpec
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import Incident, RunbookRun, Signal
from opsloop.runbooks import (
    NotebookExecutionError,
    ParameterSpec,
    coerce_parameters,
    get_runbook,
    inspect_parameters,
    list_runbooks,
    parse_window,
    run_runbook,
    shipped_runbooks_dir,
)

REPO = Path(__file__).resolve().parents[2]


def write_runbook(
    root: Path,
    name: str,
    params: str,
    *cells: str,
    meta: dict[str, Any] | None = None,
    heading: str | None = None,
) -> Path:
    """A runbook notebook in the project's notebooks/runbooks folder."""
    nb = new_notebook()
    if heading:
        nb.cells.append(new_markdown_cell(f"Intro text\n\n# {heading}\n\nmore"))
    cell = new_code_cell(params)
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nb.cells.extend(new_code_cell(c) for c in cells)
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    if meta is not None:
        nb.metadata["opsloop"] = meta
    path = root / "notebooks" / "runbooks" / f"{name}.ipynb"
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Project:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "t"\n')
    return Project.open(tmp_path, plugins=make_manager())


TYPED = """\
window: int = 7  # days to look back
ratio = 0.25
dry_run: bool = True  # only print what would change
features: list = ["a", "b"]
limits: dict[str, float] = {"psi": 0.2}
model: str = None  # the model to check
note: str | None = None
label = "x"
%matplotlib inline
"""


def spec_for(project: Project, params: str, **kw: Any) -> RunbookSpec:
    write_runbook(project.root, "check", params, "pass", **kw)
    return get_runbook(project, "check")


# ----------------------------------------------------------------------------- discovery
def test_shipped_drift_triage_is_listed_with_its_summary(project: Project) -> None:
    specs = {s.name: s for s in list_runbooks(project)}
    spec = specs["drift-triage"]
    assert spec.path == shipped_runbooks_dir() / "drift-triage.ipynb"
    assert spec.path.is_file()
    assert spec.summary.startswith("Triage a model-drift incident")
    assert spec.stage == "respond"


def test_project_runbook_overrides_shipped_and_summary_falls_back_to_heading(
    project: Project,
) -> None:
    path = write_runbook(project.root, "drift-triage", "x = 1", heading="Our own triage")
    spec = get_runbook(project, "drift-triage")
    assert spec.path == path
    assert spec.summary == "Our own triage"


def test_later_plugin_overrides_earlier_on_equal_name(project: Project, tmp_path: Path) -> None:
    other = tmp_path / "elsewhere" / "drift-triage.ipynb"
    other.parent.mkdir()
    other.write_text(json.dumps(new_notebook()))

    class Override:
        @hookimpl
        def register_runbooks(self, project: Project) -> list[RunbookSpec]:
            return [RunbookSpec(name="drift-triage", path=other, summary="override")]

    project.plugins.register(Override(), name="override")
    assert get_runbook(project, "drift-triage").summary == "override"
    assert [s.name for s in list_runbooks(project)].count("drift-triage") == 1


def test_unknown_runbook_is_one_line_with_a_hint(project: Project) -> None:
    with pytest.raises(ParameterError) as info:
        get_runbook(project, "drift-triag")
    message = str(info.value)
    assert message.startswith("no runbook named 'drift-triag'; did you mean 'drift-triage'?")
    assert "(runbooks: deployment-readiness, drift-triage, governance, " in message
    assert "\n" not in message


def test_unreadable_notebook_is_listed_and_refused_clearly(project: Project) -> None:
    bad = project.root / "notebooks" / "runbooks" / "broken.ipynb"
    bad.parent.mkdir(parents=True)
    bad.write_text("{not json")
    spec = get_runbook(project, "broken")
    assert spec.summary.startswith("unreadable:")
    with pytest.raises(OpsloopError, match="not a notebook"):
        inspect_parameters(spec)


# ----------------------------------------------------------------------------- inspection
def test_inspect_parameters_types_defaults_help_and_required(project: Project) -> None:
    params = inspect_parameters(spec_for(project, TYPED))
    assert list(params) == [
        "window", "ratio", "dry_run", "features", "limits", "model", "note", "label",
    ]  # fmt: skip
    assert params["window"] == ParameterSpec("window", "int", 7, False, "days to look back")
    assert params["ratio"] == ParameterSpec("ratio", "float", 0.25)
    assert params["dry_run"].type == "bool" and params["dry_run"].default is True
    assert params["dry_run"].help == "only print what would change"
    assert params["features"] == ParameterSpec("features", "list", ["a", "b"])
    assert params["limits"] == ParameterSpec("limits", "dict", {"psi": 0.2})
    assert params["model"] == ParameterSpec("model", "str", None, True, "the model to check")
    assert params["note"].required is False and params["note"].type == "str"
    assert params["label"].type == "str" and not params["label"].required


def test_inspect_marks_secrets_by_metadata_and_by_name(project: Project) -> None:
    spec = spec_for(
        project,
        'api_token: str = None\nconn: str = ""\nregion = "eu"',
        meta={"secret_parameters": ["conn"]},
    )
    assert spec.secret_parameters == ("conn",)
    params = inspect_parameters(spec)
    assert params["api_token"].secret and params["conn"].secret
    assert not params["region"].secret


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("when: datetime = None", "parameter 'when' has unsupported type 'datetime'"),
        ("window: int = 'seven'", "parameter 'window' is declared int but its default is 'seven'"),
        ("window: int = (", "its parameters cell is not valid Python (line 1"),
    ],
)
def test_inspect_rejects_bad_declarations(project: Project, source: str, expected: str) -> None:
    with pytest.raises(ParameterError) as info:
        inspect_parameters(spec_for(project, source))
    assert f"runbook 'check': {expected}" in str(info.value)


def test_notebook_without_parameters_cell_has_no_parameters(project: Project) -> None:
    path = project.root / "notebooks" / "runbooks" / "plain.ipynb"
    path.parent.mkdir(parents=True)
    nbformat.write(new_notebook(cells=[new_code_cell("x = 1")]), path)
    spec = get_runbook(project, "plain")
    assert inspect_parameters(spec) == {}
    with pytest.raises(ParameterError, match=r"has no parameter 'x' \(parameters: none\)"):
        coerce_parameters(spec, {"x": "1"})


# ----------------------------------------------------------------------------- coercion
def test_coerce_converts_command_line_strings(project: Project) -> None:
    spec = spec_for(project, TYPED)
    values = coerce_parameters(
        spec,
        {
            "window": "14",
            "ratio": "0.5",
            "dry_run": "false",
            "features": "x, y,z",
            "limits": '{"ks": 0.05}',
            "model": "churn",
            "note": "",
        },
    )
    assert values == {
        "window": 14,
        "ratio": 0.5,
        "dry_run": False,
        "features": ["x", "y", "z"],
        "limits": {"ks": 0.05},
        "model": "churn",
        "note": "",
    }
    assert coerce_parameters(spec, {"model": "m", "features": '["a", 1]'})["features"] == ["a", 1]
    assert coerce_parameters(spec, {"model": "m", "dry_run": "YES"})["dry_run"] is True


def test_coerce_accepts_python_values_of_the_right_type(project: Project) -> None:
    spec = spec_for(project, TYPED)
    values = coerce_parameters(spec, {"model": "m", "window": 3, "ratio": 2, "features": ("a",)})
    assert values == {"model": "m", "window": 3, "ratio": 2.0, "features": ["a"]}
    assert isinstance(values["ratio"], float)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"window": "abc"}, "parameter 'window' must be int, got 'abc'"),
        ({"window": "7.5"}, "parameter 'window' must be int, got '7.5'"),
        ({"window": True}, "parameter 'window' must be int, got True"),
        ({"ratio": "lots"}, "parameter 'ratio' must be float, got 'lots'"),
        ({"dry_run": "maybe"}, "parameter 'dry_run' must be bool, got 'maybe'"),
        ({"limits": "[1]"}, "parameter 'limits' must be dict (a JSON object), got '[1]'"),
        ({"features": "[1"}, "parameter 'features' must be list (a JSON list or a,b,c), got '[1'"),
        ({"label": 3}, "parameter 'label' must be str, got 3"),
        ({"window": None}, "parameter 'window' must be int, got None"),
    ],
)
def test_coerce_wrong_type_is_one_line(project: Project, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ParameterError) as info:
        coerce_parameters(spec_for(project, TYPED), {"model": "m", **raw})
    assert str(info.value) == f"runbook 'check': {message}"


def test_coerce_unknown_name_suggests_the_closest(project: Project) -> None:
    write_runbook(project.root, "drift-triage", "window: int = 7\nmodel = ''", "pass")
    with pytest.raises(ParameterError) as info:
        coerce_parameters(get_runbook(project, "drift-triage"), {"windw": "7"})
    assert str(info.value) == (
        "runbook 'drift-triage' has no parameter 'windw'; did you mean 'window'? "
        "(parameters: window: int, model: str)"
    )


def test_coerce_missing_required_names_them(project: Project) -> None:
    spec = spec_for(project, "model: str = None\nlimit: int\nwindow = 7\nnote: str | None = None")
    with pytest.raises(ParameterError) as info:
        coerce_parameters(spec, {"window": "3"})
    assert str(info.value) == (
        "runbook 'check': missing required parameters 'model' (str), 'limit' (int)"
    )
    assert coerce_parameters(spec, {"model": "m", "limit": "1"}) == {"model": "m", "limit": 1}
    with pytest.raises(ParameterError, match="parameter 'model' must be str, got None"):
        coerce_parameters(spec, {"model": None, "limit": "1"})
    assert coerce_parameters(spec, {"model": "m", "limit": "1", "note": None})["note"] is None


def test_coerce_never_echoes_a_secret_value(project: Project) -> None:
    spec = spec_for(project, "api_key: int = 0")
    with pytest.raises(ParameterError) as info:
        coerce_parameters(spec, {"api_key": "hunter2-secret"})
    assert "hunter2" not in str(info.value)
    assert "must be int, got a secret str" in str(info.value)


# ----------------------------------------------------------------------------- refusals
def _nothing_written(project: Project) -> None:
    assert not (project.home / "runbooks").exists()
    assert project.records.list(RunbookRun) == []
    assert list(project.audit.entries()) == []


@pytest.mark.parametrize(
    ("params", "kwargs", "message"),
    [
        ({"windw": "7"}, {}, "has no parameter 'windw'; did you mean 'window'?"),
        ({"window": "abc"}, {}, "parameter 'window' must be int, got 'abc'"),
        ({"model": "m"}, {"incident_id": "inc_nope"}, "no incident with id 'inc_nope'"),
        ({}, {}, "missing required parameter 'model' (str)"),
        ({"model": "m"}, {"timeout": 0}, "runbook timeout must be more than 0 seconds"),
    ],
)
def test_run_refuses_bad_input_before_writing_anything(
    project: Project, params: dict[str, Any], kwargs: dict[str, Any], message: str
) -> None:
    write_runbook(project.root, "check", "window: int = 7\nmodel: str = None", "1/0")
    with pytest.raises(ParameterError) as info:
        run_runbook(project, "check", params, **kwargs)
    assert message in str(info.value)
    _nothing_written(project)


def test_run_refuses_a_record_that_is_not_an_incident(project: Project) -> None:
    write_runbook(project.root, "check", "x = 1", "pass")
    signal = Signal(source="test", type="slo_burn")
    project.records.add(signal)
    with pytest.raises(ParameterError, match=f"'{signal.id}' is a signal, not an incident"):
        run_runbook(project, "check", {}, incident_id=signal.id)
    assert not (project.home / "runbooks").exists()


def test_before_runbook_can_refuse_and_sees_no_secret(project: Project) -> None:
    write_runbook(project.root, "rotate", "api_token: str = None\nregion = 'eu'", "pass")
    seen: list[dict[str, Any]] = []

    class Approval:
        @hookimpl
        def before_runbook(
            self, project: Project, runbook: RunbookSpec, parameters: dict[str, Any]
        ) -> None:
            seen.append(parameters)
            raise OpsloopError(f"runbook '{runbook.name}' needs an approval")

    project.plugins.register(Approval(), name="approval")
    with pytest.raises(OpsloopError, match="needs an approval"):
        run_runbook(project, "rotate", {"api_token": "tok-123456", "region": "us"})
    assert seen == [{"api_token": "***", "region": "us"}]
    _nothing_written(project)


def test_run_without_an_executor_is_refused(tmp_path: Path) -> None:
    (tmp_path / "opsloop.toml").write_text('[project]\nname = "t"\n')
    project = Project.open(tmp_path, plugins=make_manager(disabled=["papermill"]))

    class Runbooks:
        @hookimpl
        def register_runbooks(self, project: Project) -> list[RunbookSpec]:
            path = write_runbook(project.root, "check", "x = 1", "pass")
            return [RunbookSpec(name="check", path=path)]

    project.plugins.register(Runbooks(), name="runbooks")
    with pytest.raises(OpsloopError, match="no plugin executes notebooks"):
        run_runbook(project, "check", {})
    _nothing_written(project)


def test_run_refuses_two_different_incidents(project: Project) -> None:
    write_runbook(project.root, "check", 'incident_id: str = ""', "pass")
    incident = Incident(title="t", severity="warning")
    project.records.add(incident)
    with pytest.raises(ParameterError, match="parameter incident_id 'inc_other' and the incident"):
        run_runbook(project, "check", {"incident_id": "inc_other"}, incident_id=incident.id)
    _nothing_written(project)


def test_run_refuses_a_runbook_name_that_is_not_a_file_name(project: Project) -> None:
    path = write_runbook(project.root, "check", "x = 1", "pass")

    class Evil:
        @hookimpl
        def register_runbooks(self, project: Project) -> list[RunbookSpec]:
            return [RunbookSpec(name="../../escape", path=path)]

    project.plugins.register(Evil(), name="evil")
    with pytest.raises(ParameterError, match="is not a safe file name"):
        run_runbook(project, "../../escape", {})
    _nothing_written(project)


def test_run_links_to_an_incident_named_in_parameters(project: Project) -> None:
    """An ``incident_id`` parameter is checked like ``--incident`` (here: it does not exist)."""
    write_runbook(project.root, "check", 'incident_id: str = ""', "pass")
    incident = Incident(title="t", severity="warning")
    with pytest.raises(ParameterError, match=f"no incident with id '{incident.id}'"):
        run_runbook(project, "check", {"incident_id": incident.id})
    _nothing_written(project)


class FakeExecutor:
    """An execute_notebook plugin that fails the way it is told, without a kernel."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    @hookimpl(tryfirst=True)
    def execute_notebook(self, input_path: Path, output_path: Path) -> Path:
        output_path.write_text(input_path.read_text())  # as papermill does on start
        raise self.error


def test_executor_error_is_a_failed_run_with_its_one_line(project: Project) -> None:
    write_runbook(project.root, "check", "x = 1", "pass")
    project.plugins.register(
        FakeExecutor(NotebookExecutionError("kernel died while running cell 2")), name="fake"
    )
    run = run_runbook(project, "check", {"x": "2"})
    assert (run.status, run.error) == ("failed", "kernel died while running cell 2")
    assert run.output_path.endswith(f"{run.id}.failed.ipynb")
    assert Path(run.output_path).is_file()
    assert project.records.get(run.id) == run


def test_ctrl_c_is_recorded_then_raised(project: Project) -> None:
    write_runbook(project.root, "check", "x = 1", "pass")
    project.plugins.register(FakeExecutor(KeyboardInterrupt()), name="fake")
    with pytest.raises(KeyboardInterrupt):
        run_runbook(project, "check", {})
    (run,) = project.records.list(RunbookRun)
    assert (run.status, run.error) == ("failed", "interrupted by the user")
    assert Path(run.output_path).name == f"{run.id}.failed.ipynb"
    assert [p.name for p in Path(run.output_path).parent.iterdir()] == [f"{run.id}.failed.ipynb"]
    assert list(project.audit.entries())[-1]["after"]["status"] == "failed"


# ----------------------------------------------------------------------------- helpers
def test_parse_window() -> None:
    start, end = parse_window("last-7d") or (None, None)
    assert start is not None and end is not None
    assert abs((end - start) - timedelta(days=7)) < timedelta(seconds=1)
    assert abs(end - datetime.now(UTC)) < timedelta(seconds=5)
    span = parse_window("2026-11-01T00:00/2026-11-08T12:00+01:00")
    assert span == (
        datetime(2026, 11, 1, tzinfo=UTC),
        datetime(2026, 11, 8, 11, 0, tzinfo=UTC),
    )
    assert parse_window("shifted") is None
    assert parse_window("") is None
    assert parse_window("a/b") is None


def test_importing_the_engine_does_not_import_papermill() -> None:
    code = (
        "import sys, opsloop.runbooks, opsloop.builtins.papermill_plugin as p\n"
        "slow = [m for m in ('papermill', 'nbclient', 'jupyter_client', 'nbformat')"
        " if m in sys.modules]\n"
        "assert not slow, slow\n"
        "info = p.describe_plugin()\n"
        "assert (info.name, info.stage) == ('papermill', 'respond'), info\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_shipped_drift_triage_is_committed_clean() -> None:
    path = REPO / "notebooks" / "runbooks" / "drift-triage.ipynb"
    assert (shipped_runbooks_dir() / "drift-triage.ipynb").resolve() == path.resolve()
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    assert nb.metadata.kernelspec.name == "python3"
    assert nb.metadata.opsloop.summary
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    params = inspect_parameters(RunbookSpec(name="drift-triage", path=path))
    assert {n: (p.type, p.default) for n, p in params.items()} == {
        "project_dir": ("str", "."),
        "model": ("str", ""),
        "window": ("str", ""),
        "incident_id": ("str", ""),
    }
