"""Issue 10: a type error in the fastapi plugin's secret settings never echoes the value."""

from __future__ import annotations

from pathlib import Path

import opsloop_fastapi
import pytest

from opsloop.plugins import make_manager
from opsloop.project import Project


@pytest.mark.parametrize(
    ("setting", "kind"),
    [
        ('admin_token = ["hunter2-admin-xyz"]', "a list"),
        ('log_postgres_url = { url = "postgresql://svc:pw-hunter2@db/x" }', "a table"),
    ],
)
def test_a_bad_secret_setting_is_reported_without_its_value(
    tmp_path: Path, setting: str, kind: str
) -> None:
    (tmp_path / "opsloop.toml").write_text(f"[plugin.fastapi]\n{setting}\n")
    manager = make_manager()
    manager.register(opsloop_fastapi.plugin, name="fastapi")
    project = Project.open(tmp_path, plugins=manager, environ={})
    try:
        error = project.settings_errors()["fastapi"]
    finally:
        project.close()
    key = setting.split(" ")[0]
    assert error == (
        f"{tmp_path / 'opsloop.toml'}: 'plugin.fastapi.{key}' must be a string, "
        f"got {kind} (value hidden: secret setting)"
    )
