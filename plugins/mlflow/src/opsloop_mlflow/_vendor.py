"""Import MLflow offline, and scope its process-global tracking URI to one block.

MLflow sends usage telemetry unless told not to; it reads the switch when it is imported,
so every opsloop import of MLflow goes through :func:`import_mlflow`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: Environment switches MLflow 3 reads to stay offline (mlflow/telemetry/utils.py:
#: ``is_telemetry_disabled``). An explicit value set by the user is kept.
OFFLINE_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

_URI_LOCK = threading.RLock()


def offline_environ(base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: os.environ) plus the telemetry switches, for child processes."""
    env = dict(os.environ if base is None else base)
    for key, value in OFFLINE_ENV.items():
        env.setdefault(key, value)
    return env


def import_mlflow() -> Any:
    """Import and return ``mlflow`` with telemetry off."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
    # MLflow logs store migrations at INFO on first use; a CLI user should not see them.
    # Read once, at MLflow's import; a level the user set is kept.
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    # ... nor a progress bar on stderr for every artifact download (remote stores).
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    imported_before = "mlflow" in sys.modules
    import mlflow

    if imported_before:
        # Someone imported MLflow before us: drop a telemetry client it may have made.
        try:
            from mlflow.telemetry.client import set_telemetry_client

            set_telemetry_client()  # type: ignore[no-untyped-call]
        except Exception:  # noqa: BLE001 - best effort, MLflow internals may move
            pass
    return mlflow


@contextmanager
def scoped_uris(tracking_uri: str, registry_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API at these stores for one block, then restore what was set.

    ``mlflow.sklearn.log_model`` only talks to the process-global tracking URI; this keeps
    a project's store from leaking into another project (or the user's own MLflow code).
    """
    mlflow = import_mlflow()
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    with _URI_LOCK:
        saved_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
        saved_tracking = tracking_utils._tracking_uri
        saved_registry = registry_utils._registry_uri
        try:
            mlflow.set_tracking_uri(tracking_uri)
            mlflow.set_registry_uri(registry_uri)
            yield
        finally:
            tracking_utils.set_tracking_uri(saved_tracking)  # type: ignore[arg-type]
            registry_utils._registry_uri = saved_registry
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def error_code(exc: BaseException) -> str:
    """MLflow's error code (RESOURCE_DOES_NOT_EXIST, ...) or ""."""
    return str(getattr(exc, "error_code", "") or "")


def is_mlflow_error(exc: BaseException) -> bool:
    """True when ``exc`` is an MlflowException (MLflow imported offline to check)."""
    import_mlflow()  # telemetry off, even if this is the first MLflow import
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException)
