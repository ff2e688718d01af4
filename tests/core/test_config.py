from __future__ import annotations

from pathlib import Path

import pytest

from opsloop.config import STARTER, load_config
from opsloop.errors import ConfigError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "opsloop.toml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None, environ={})
    assert config.project.home == ".opsloop"
    # the built-in detector; one drifted feature is enough for a dataset verdict
    assert config.monitor.detector == "profile"
    assert (config.monitor.min_drifted_features, config.monitor.drift_share) == (1, 0.0)
    assert config.monitor.alpha == 0.05
    assert config.source == "<defaults>"


def test_starter_file_loads_and_matches_defaults(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, STARTER.format(name="x")), environ={})
    assert config.project.name == "x"
    assert config.respond.runbook_timeout == 600
    assert config.monitor == load_config(None, environ={}).monitor  # [monitor] shows defaults


def test_monitor_durations_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"monitor\.window.*not a duration.*5m"):
        load_config(write(tmp_path, '[monitor]\nwindow = "an hour"\n'), environ={})
    config = load_config(write(tmp_path, '[monitor]\nwindow = "90m"\ninterval = "30s"\n'))
    assert (config.monitor.window, config.monitor.interval) == ("90m", "30s")


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[monitor]\ndrift_shar = 0.3\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, environ={})
    message = str(err.value)
    assert "monitor.drift_shar" in message and str(path) in message
    assert "\n" not in message


def test_wrong_type_names_expected_type(tmp_path: Path) -> None:
    path = write(tmp_path, '[respond]\nrunbook_timeout = "soon"\n')
    with pytest.raises(ConfigError, match=r"'respond.runbook_timeout' must be a number"):
        load_config(path, environ={})


def test_malformed_toml_is_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, "[monitor\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_config(path, environ={})
    assert "\n" not in str(err.value)


def test_environment_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, "[monitor]\ndrift_share = 0.3\n")
    config = load_config(
        path,
        environ={"OPSLOOP_MONITOR__DRIFT_SHARE": "0.9", "OPSLOOP_PLUGINS__DISABLED": "a, b"},
    )
    assert config.monitor.drift_share == 0.9
    assert config.plugins.disabled == ["a", "b"]


def test_bad_environment_override_names_the_variable_key() -> None:
    with pytest.raises(ConfigError, match=r"monitor\.drift_share"):
        load_config(None, environ={"OPSLOOP_MONITOR__DRIFT_SHARE": "lots"})


def test_tool_opsloop_in_pyproject(tmp_path: Path) -> None:
    path = tmp_path / "pyproject.toml"
    path.write_text('[project]\nname="p"\n[tool.opsloop.project]\nname = "from-pyproject"\n')
    from opsloop.config import find_config

    found = find_config(tmp_path / "sub" if (tmp_path / "sub").mkdir() is None else tmp_path)
    assert found == path
    assert load_config(found, environ={}).project.name == "from-pyproject"


def test_foreign_opsloop_variables_are_ignored() -> None:
    # dlt reads <PIPELINE>__LOAD__... variables; a pipeline named opsloop_x must not break us.
    config = load_config(None, environ={"OPSLOOP_BREAST_CANCER__LOAD__WORKERS": "2"})
    assert config.project.name == "opsloop-project"
