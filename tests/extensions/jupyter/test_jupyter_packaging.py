"""The wheel ships the prebuilt labextension and the server extension's config: no Node.js."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from jupyter_testkit import LABEXTENSION

EXTENSION = LABEXTENSION.parents[2]  # extensions/jupyter


def test_committed_assets_are_a_jupyterlab_4_extension() -> None:
    meta = json.loads((LABEXTENSION / "package.json").read_text())
    assert meta["name"] == "opsloop-jupyter"
    assert meta["jupyterlab"]["_build"]["load"].startswith("static/remoteEntry.")
    assert (LABEXTENSION / meta["jupyterlab"]["_build"]["load"]).is_file()
    source = json.loads((EXTENSION / "js" / "package.json").read_text())
    assert source["version"] == meta["version"]  # rebuilt when the source version moves


def test_wheel_holds_labextension_and_server_config(tmp_path: Path) -> None:
    uv = shutil.which("uv", path=str(Path(sys.executable).parent)) or shutil.which("uv")
    assert uv, "uv is installed by make setup"
    subprocess.run(
        [uv, "build", "-q", "--no-sources", "--wheel", "--out-dir", str(tmp_path), str(EXTENSION)],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("opsloop_jupyter-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    data = "opsloop_jupyter-0.1.0.data/data/"
    assert f"{data}share/jupyter/labextensions/opsloop-jupyter/package.json" in names
    assert any(
        n.startswith(f"{data}share/jupyter/labextensions/opsloop-jupyter/static/remoteEntry.")
        for n in names
    )
    config = f"{data}etc/jupyter/jupyter_server_config.d/opsloop_jupyter.json"
    assert json.loads(zipfile.ZipFile(wheel).read(config)) == {
        "ServerApp": {"jpserver_extensions": {"opsloop_jupyter": True}}
    }
    assert not [n for n in names if "node_modules" in n or n.endswith(".ts")]
