"""`opsloop doctor` checks for the MLflow store, done without importing MLflow."""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

from opsloop.errors import OpsloopError
from opsloop.interfaces import CheckResult
from opsloop_mlflow.settings import is_remote, local_path, redact_uri, resolve, sqlite_path

if TYPE_CHECKING:
    from opsloop.project import Project

PLUGIN = "mlflow"
HEALTH_TIMEOUT = 3.0


def _writable_folder(path: Path) -> tuple[bool, str]:
    """Whether ``path`` (a folder, maybe not yet made) can be created and written."""
    probe = path
    while not probe.exists():
        if probe.parent == probe:
            return False, f"{path}: no existing parent folder"
        probe = probe.parent
    if not probe.is_dir():
        return False, f"{probe} is not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{probe} is not writable"
    return True, str(path)


def _store_check(label: str, uri: str) -> CheckResult:
    name = f"mlflow {label} store reachable"
    db = sqlite_path(uri)
    if db is not None:
        if db.exists() and not os.access(db, os.R_OK | os.W_OK):
            return CheckResult(name, False, f"{db} is not readable and writable", PLUGIN)
        ok, detail = _writable_folder(db.parent)
        return CheckResult(name, ok, f"sqlite {db}" if ok else detail, PLUGIN)
    if is_remote(uri):
        url = uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=HEALTH_TIMEOUT) as response:
                status = response.status
            detail = f"{redact_uri(uri)} (/health {status})"
            return CheckResult(name, status == 200, detail, PLUGIN)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            return CheckResult(name, False, f"{redact_uri(uri)}: {reason}", PLUGIN)
    scheme = uri.split(":", 1)[0]
    return CheckResult(name, True, f"{redact_uri(uri)} ({scheme}: not probed)", PLUGIN)


def checks(project: Project) -> list[CheckResult]:
    """Tracking and registry stores reachable, local artifact folder writable; never raises."""
    try:
        config = resolve(None, project)
    except OpsloopError as exc:
        return [CheckResult("mlflow settings", False, str(exc), PLUGIN)]
    results = [_store_check("tracking", config.tracking_uri)]
    if config.registry_uri != config.tracking_uri:
        results.append(_store_check("registry", config.registry_uri))
    folder = local_path(config.artifact_root) if config.artifact_root else None
    if folder is not None:
        ok, detail = _writable_folder(folder)
        results.append(CheckResult("mlflow artifact folder writable", ok, detail, PLUGIN))
    return results
