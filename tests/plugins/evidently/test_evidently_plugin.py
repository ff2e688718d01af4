"""The evidently plugin's hooks: detectors from project config, doctor checks, no phoning home."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import opsloop_evidently.plugin
import pytest
from opsloop_evidently.detector import EvidentlyDriftDetector
from opsloop_evidently.psi_ks import PsiKsDetector
from opsloop_evidently.settings import Settings

from opsloop.errors import ConfigError
from opsloop.interfaces import DriftDetector
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.testing import assert_plugin_conforms

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "core" / "src" / "opsloop" / "data" / "breast_cancer.csv"


def open_project(tmp_path: Path, toml: str = "") -> Project:
    (tmp_path / "opsloop.toml").write_text(textwrap.dedent(toml), encoding="utf-8")
    return Project.open(tmp_path, plugins=make_manager(opsloop_evidently.plugin), environ={})


def detectors(project: Project) -> list[DriftDetector]:
    """This plugin's detectors (the core's built-in 'profile' detector is registered too)."""
    found = [d for group in project.hook.register_drift_detectors(project=project) for d in group]
    assert "profile" in [d.name for d in found]
    return [d for d in found if d.name != "profile"]


def test_describe_plugin() -> None:
    info = opsloop_evidently.plugin.describe_plugin()
    assert (info.name, info.stage) == ("evidently", "monitor")
    assert info.config_model == "opsloop_evidently.settings:Settings"
    assert info.vendor_packages == ("evidently",)


def test_plugin_conforms_to_the_contract(tmp_path: Path) -> None:
    assert_plugin_conforms(opsloop_evidently.plugin, tmp_path / "conform")


def test_settings_are_found_under_the_plugin_name(tmp_path: Path) -> None:
    project = open_project(tmp_path, "[plugin.evidently]\nmethod = 'psi'\n")
    assert isinstance(project.settings("evidently"), Settings)
    assert project.settings("evidently").method == "psi"


def test_register_drift_detectors_reads_project_config(tmp_path: Path) -> None:
    project = open_project(
        tmp_path,
        """
        [monitor]
        drift_share = 0.3

        [plugin.evidently]
        method = "wasserstein"
        threshold = 0.2
        ks_alpha = 0.01
        psi_threshold = 0.25
        psi_bins = 8
        """,
    )
    found = detectors(project)
    assert [d.name for d in found] == ["evidently", "psi-ks"]
    assert all(isinstance(d, DriftDetector) for d in found)
    evidently, light = found
    assert isinstance(evidently, EvidentlyDriftDetector)
    assert isinstance(light, PsiKsDetector)
    assert (evidently.drift_share, evidently.method, evidently.threshold) == (
        0.3,
        "wasserstein",
        0.2,
    )
    assert (light.drift_share, light.alpha, light.psi_threshold, light.max_bins) == (
        0.3,
        0.01,
        0.25,
        8,
    )


def test_defaults_without_settings(tmp_path: Path) -> None:
    evidently, light = detectors(open_project(tmp_path))
    # [monitor] drift_share is 0 by default (the built-in detector needs no share), but these
    # detectors' per-column verdicts are uncorrected: they keep a share of 0.5
    assert (evidently.drift_share, evidently.method, evidently.threshold) == (0.5, None, None)
    assert (light.drift_share, light.alpha, light.psi_threshold, light.max_bins) == (
        0.5,
        0.05,
        0.2,
        10,
    )


def test_plugin_drift_share_wins_over_monitor_drift_share(tmp_path: Path) -> None:
    toml = "[monitor]\ndrift_share = 0.3\n[plugin.evidently]\ndrift_share = 0.2\n"
    evidently, light = detectors(open_project(tmp_path, toml))
    assert (evidently.drift_share, light.drift_share) == (0.2, 0.2)


def test_unknown_setting_is_a_one_line_config_error(tmp_path: Path) -> None:
    project = open_project(tmp_path, "[plugin.evidently]\nmethd = 'ks'\n")
    with pytest.raises(ConfigError, match=r"unknown key 'plugin\.evidently\.methd'"):
        detectors(project)


def test_bad_setting_value_is_a_config_error(tmp_path: Path) -> None:
    project = open_project(tmp_path, "[plugin.evidently]\npsi_threshold = -1\n")
    with pytest.raises(ConfigError, match=r"plugin\.evidently\.psi_threshold"):
        detectors(project)


def test_doctor_checks_that_evidently_imports(tmp_path: Path) -> None:
    project = open_project(tmp_path)
    results = [r for group in project.hook.register_checks(project=project) for r in group]
    mine = {r.name: r for r in results if r.plugin == "evidently"}
    imports = mine["evidently imports"]
    assert imports.ok, imports.detail
    assert imports.detail.startswith("evidently 0.7.") and "with pandas 2." in imports.detail
    telemetry = mine["evidently telemetry off"]
    assert telemetry.ok and telemetry.detail.startswith("DO_NOT_TRACK=")


def test_doctor_names_the_pandas_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.metadata

    from opsloop_evidently import checks, offline

    real = importlib.metadata.version
    fake = {"pandas": "3.0.1", "evidently": "0.7.23"}
    monkeypatch.setattr(checks, "version", lambda d: fake.get(d) or real(d))
    result = checks.evidently_imports()
    assert not result.ok
    assert result.detail == (
        "evidently 0.7.23 needs pandas<3, found pandas 3.0.1: pip install 'pandas<3'"
    )
    monkeypatch.setattr(importlib.metadata, "version", lambda d: fake.get(d) or real(d))
    hint = offline.import_hint(ImportError("cannot import name 'infer_dtype_from_object'"))
    assert hint.startswith("evidently cannot import with pandas 3.0.1 (cannot import name")
    assert hint.endswith("install pandas<3: pip install 'pandas<3'")


def run_python(code: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter (nothing imported yet) with HOME in ``home``."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "HOME": str(home)},
    )


def test_entry_module_and_commands_import_no_heavy_package(tmp_path: Path) -> None:
    proc = run_python(
        """
        import json, sys, typer
        import opsloop_evidently.plugin as plugin
        plugin.describe_plugin()
        plugin.register_commands(cli=typer.Typer())
        heavy = ("evidently", "pandas", "numpy", "scipy", "sklearn")
        print(json.dumps(sorted(m for m in heavy if m in sys.modules)))
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []


def test_evidently_run_makes_no_network_call(tmp_path: Path) -> None:
    """Import, run and save a report under an audit hook that records every connection."""
    proc = run_python(
        f"""
        import json, os, sys
        events = []
        WATCHED = {{
            "socket.connect", "socket.getaddrinfo", "socket.gethostbyname", "socket.sendto",
            "socket.sendmsg", "subprocess.Popen",
        }}
        def hook(event, args):
            if event in WATCHED or event.startswith(("urllib.", "http.")):
                events.append([event, repr(args)[:120]])
        sys.addaudithook(hook)
        assert "DO_NOT_TRACK" not in os.environ
        import pandas as pd
        from pathlib import Path
        from opsloop_evidently.detector import EvidentlyDriftDetector
        frame = pd.read_csv({str(DATA)!r}).drop(columns="target")
        result = EvidentlyDriftDetector().detect(
            frame.iloc[:300], frame.iloc[300:], report_dir=Path({str(tmp_path / "reports")!r})
        )
        print(json.dumps({{
            "events": events,
            "do_not_track": os.environ.get("DO_NOT_TRACK"),
            "telemetry_imported": "evidently.telemetry" in sys.modules,
            "report": str(result.report_path),
        }}))
        """,
        tmp_path,
        timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["events"] == []
    assert out["do_not_track"] == "1"
    assert out["telemetry_imported"] is False
    assert Path(out["report"]).is_file()
