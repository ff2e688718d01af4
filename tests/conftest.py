"""Shared test settings: no network for vendor SDKs, quiet telemetry, local services."""

from __future__ import annotations

import os

# Belt and braces: the plugins switch these off themselves; tests must not depend on it.
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("RUNTIME__DLTHUB_TELEMETRY", "false")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")
# CLI runs in tests suggest a rule's runbook instead of starting a kernel per incident; a
# test of automatic runs sets OPSLOOP_RESPOND__AUTO_RUN (or [respond] auto_run) itself.
os.environ.setdefault("OPSLOOP_RESPOND__AUTO_RUN", "off")
# Audit keys and checkpoints go to a throwaway opsloop home, never the user's ~/.config.
if "OPSLOOP_CONFIG_HOME" not in os.environ:
    import tempfile

    os.environ["OPSLOOP_CONFIG_HOME"] = tempfile.mkdtemp(prefix="opsloop-test-home-")
