"""Test kit for the prometheus plugin: a served project, a real Prometheus server, promtool.

The project serves the breast-cancer model (scikit-learn, shipped data) from an in-memory
registry through the real opsloop-fastapi app; the model is wrapped so that a request can
ask it to fail (a server-side error) or to be slow, which is what the SLO rules count.
"""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import opsloop_fastapi.plugin
import opsloop_prometheus.plugin
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from opsloop import hookimpl
from opsloop.errors import OpsloopError
from opsloop.plugins import make_manager
from opsloop.project import Project
from opsloop.records import ModelVersionRef

MODEL = "bc"
TARGET = "target"
FAIL = "worst_fractal_dimension"  # a negative value here makes the model raise
SLOW = "worst_symmetry"  # a value above 5 here makes it take SLOW_SECONDS
SLOW_SECONDS = 0.06


def promtool() -> str:
    """promtool's path; the Debian package `prometheus` ships it (see .ci/services.sh)."""
    found = shutil.which("promtool")
    assert found, "promtool not found: apt-get install -y prometheus (.ci/services.sh does)"
    return found


def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    assert found, "prometheus not found: apt-get install -y prometheus (.ci/services.sh does)"
    return found


@cache
def breast_cancer() -> pd.DataFrame:
    text = resources.files("opsloop.data").joinpath("breast_cancer.csv").read_text()
    frame = pd.read_csv(io.StringIO(text))
    return frame.sample(frac=1, random_state=11).reset_index(drop=True)


def features() -> list[str]:
    return [c for c in breast_cancer().columns if c != TARGET]


class Flaky:
    """The model, failing on rows marked in FAIL and slow on rows marked in SLOW."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, frame: pd.DataFrame) -> Any:
        if (frame[FAIL] < 0).any():
            raise RuntimeError("the test asked this prediction to fail")
        if (frame[SLOW] > 5).any():
            time.sleep(SLOW_SECONDS)
        return self.model.predict(frame[features()])


@cache
def trained() -> Flaky:
    data = breast_cancer().iloc[:400]
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    return Flaky(model.fit(data[features()], data[TARGET]))


class Store:
    """A one-model registry in memory: version 1 @champion, with registered metrics."""

    name = "memory"

    def __init__(self) -> None:
        self.ref = ModelVersionRef(
            name=MODEL,
            version="1",
            uri=f"models:/{MODEL}/1",
            store=self.name,
            aliases=["champion"],
            metrics={"accuracy": 0.97},
            signature={"inputs": [{"name": f, "type": "double"} for f in features()],
                       "outputs": [{"type": "long"}]},
        )  # fmt: skip

    def list_models(self) -> list[str]:
        return [MODEL]

    def resolve(self, name: str, alias_or_version: str) -> ModelVersionRef:
        if name != MODEL or alias_or_version not in ("1", "champion", "latest"):
            raise OpsloopError(f"model '{name}' has no alias or version '{alias_or_version}'")
        return self.ref

    def set_alias(self, name: str, alias: str, version: str) -> str | None:
        return "1"

    def load(self, ref: ModelVersionRef) -> Any:
        return trained()


class RegistryPlugin:
    def __init__(self) -> None:
        self.store = Store()

    @hookimpl
    def model_store(self, project: Any) -> Store:
        return self.store


CONFIG = """
[project]
name = "prometheus-e2e"

[monitor]
min_labels = 50
profile_on_register = false

[plugin.fastapi]
log_flush_seconds = 0.05
log_rotate_seconds = 0.2

[plugin.prometheus]
stale_after = "1h"

[plugin.prometheus.slo.bc]
availability = 0.99
latency_seconds = 0.05
latency_target = 0.99
"""


def open_project(root: Path, config: str = CONFIG, *plugins: tuple[str, Any]) -> Project:
    """A project with the built-ins, fastapi, prometheus and the in-memory registry."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "opsloop.toml").write_text(config, encoding="utf-8")
    manager = make_manager()
    manager.register(opsloop_fastapi.plugin, name="fastapi")
    manager.register(opsloop_prometheus.plugin, name="prometheus")
    manager.register(RegistryPlugin(), name="memory-registry")
    for name, plugin in plugins:
        manager.register(plugin, name=name)
    return Project.open(root, plugins=manager)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Prometheus:
    """A Prometheus server started by the test, and its HTTP API."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def query(self, expr: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10,
                           trust_env=False)  # fmt: skip
        body = answer.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return list(body["data"]["result"])

    def wait_for(self, what: str, check: Any, timeout: float = 90) -> Any:
        """Poll ``check()`` until it returns something truthy; fail with its last answer."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = check()
            if last:
                return last
            time.sleep(0.5)
        tail = self.log.read_text(errors="replace")[-2000:]
        raise AssertionError(f"timed out waiting for {what}; last answer {last!r}\n{tail}")


@contextmanager
def run_prometheus(
    folder: Path, targets: list[str], rule_files: list[Path]
) -> Iterator[Prometheus]:
    """Start ``prometheus`` on a free loopback port, scraping ``targets`` every second and
    evaluating ``rule_files`` every second, with its storage in ``folder``; stop it after."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "prometheus.yml"
    rules = "\n".join(f"  - {p}" for p in rule_files)
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        f"rule_files:\n{rules}\n"
        "scrape_configs:\n  - job_name: opsloop\n    static_configs:\n"
        f"      - targets: [{', '.join(repr(t) for t in targets)}]\n",
        encoding="utf-8",
    )
    port = free_port()
    log = folder / "prometheus.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [prometheus_binary(), f"--config.file={config}",
             f"--storage.tsdb.path={folder / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
             "--log.level=warn"],
            stdout=out, stderr=subprocess.STDOUT, cwd=folder,
        )  # fmt: skip
    server = Prometheus(url=f"http://127.0.0.1:{port}", process=process, log=log)
    try:

        def ready() -> bool:
            assert process.poll() is None, log.read_text(errors="replace")[-2000:]
            try:
                return httpx.get(f"{server.url}/-/ready", timeout=2, trust_env=False).is_success
            except httpx.HTTPError:
                return False

        server.wait_for("Prometheus to be ready", ready, timeout=60)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
