"""Shared pieces of the retraining tests and benchmark (no tests here): a model with a
serving bug, a trainer that can hand it out, and a served project on a real MLflow store.

The bug is a classic training/serving skew: :class:`BatchScaler` standardizes each batch
with the batch's own mean and spread. On a holdout of 169 rows that is close to the
population's scaling, so the model passes the promotion gate; on a one-row request the
spread is 0, every feature becomes NaN and the classifier raises.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import opsloop_fastapi.plugin as fastapi_plugin
import opsloop_mlflow.plugin as mlflow_plugin
from sklearn.base import BaseEstimator, TransformerMixin
from test_registry_kit import Tables, db_template, frames

from opsloop import hookimpl
from opsloop.interfaces import Dataset, TrainedModel
from opsloop.plugins import make_manager
from opsloop.project import Project

MODEL = "bc"


class BatchScaler(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Standardizes with the statistics of the batch it is given (the bug)."""

    def fit(self, x: Any, y: Any = None) -> BatchScaler:
        return self

    def transform(self, x: Any) -> Any:
        values = np.asarray(x, dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            return (values - values.mean(axis=0)) / values.std(axis=0)


def broken_model(data: Dataset, target: str) -> TrainedModel:
    """The default trainer's estimator with a BatchScaler in front of it."""
    from opsloop_mlflow.train import train
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline

    good = train(data, target)
    frame = data.frame
    model = Pipeline([("scale", BatchScaler()), ("clf", LogisticRegression(max_iter=1000))])
    model.fit(frame[good.features], frame[target])
    good.model = model
    good.params = {**good.params, "estimator": "Pipeline(BatchScaler, LogisticRegression)"}
    return good


class Trainer:
    """train_model that hands out the broken model while ``broken`` is set (else defers)."""

    def __init__(self) -> None:
        self.broken = False
        self.calls = 0

    @hookimpl(tryfirst=True)
    def train_model(
        self, project: Any, data: Dataset, target: str, params: dict[str, Any]
    ) -> TrainedModel | None:
        self.calls += 1
        return broken_model(data, target) if self.broken else None


def policy(**overrides: Any) -> str:
    """A [respond.retrain.bc] table with a short canary; ``overrides`` as TOML values."""
    values: dict[str, Any] = {
        "triggers": '["drift", "quality"]',
        "training_data": '"raw.bc_train"',
        "target": '"target"',
        "cooldown": '"1h"',
        "background": "false",
        "canary_duration": '"60s"',
        "canary_min_requests": "20",
        "poll_seconds": "0.25",
        "max_error_rate": "0.01",
        "max_latency_ratio": "20",
    }
    values.update({k: str(v) for k, v in overrides.items()})
    return f"\n[respond.retrain.{MODEL}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items())


GATE = """
[registry.gate]
holdout = "raw.bc_holdout"
target = "target"
thresholds = { roc_auc = 0.9, accuracy = 0.85 }

# the broken model's BatchScaler is a custom class: skops refuses it, a pickle carries it
[plugin.mlflow]
serialization_format = "cloudpickle"
"""

SERVING = """
[plugin.fastapi]
canary_share = 0.5
poll_seconds = 0.2
log_flush_seconds = 0.05
log_rotate_seconds = 0.2
"""


def open_project(
    root: Path, config: str = "", *, serving: bool = True, serving_config: str = SERVING
) -> tuple[Project, Trainer]:
    """Built-ins + opsloop-mlflow (+ opsloop-fastapi) + tables + the trainer; v1 @champion."""
    from opsloop import registry

    root.mkdir(parents=True, exist_ok=True)
    text = (
        '[project]\nname = "retrain-test"\n\n[audit]\nactor = "alice"\n\n'
        "[monitor]\nprofile_on_register = false\n"
        + GATE
        + (serving_config if serving else "")
        + config
    )
    (root / "opsloop.toml").write_text(text, encoding="utf-8")
    (root / ".opsloop").mkdir(exist_ok=True)
    shutil.copy(db_template(), root / ".opsloop" / "mlflow.db")
    manager = make_manager(mlflow_plugin)
    if serving:
        manager.register(fastapi_plugin, name="fastapi")
    manager.register(Tables(), name="tables")
    trainer = Trainer()
    manager.register(trainer, name="trainer")
    project = Project.open(root, plugins=manager, environ={})
    data = Dataset(name="bc_train", frame=frames()[0], load_ids=["l1"], content_hash="h1")
    trained = project.hook.train_model(project=project, data=data, target="target", params={})
    ref = registry.register_model(project, MODEL, trained, {"load_ids": ["l1"]})
    registry.set_alias(project, MODEL, "champion", ref.version)
    return project, trainer


class Load:
    """A load generator: one-row requests from ``threads`` threads until stopped.

    Every response is counted by status; anything but 200 is a failed request.
    """

    def __init__(self, url: str, threads: int = 2, pause: float = 0.002) -> None:
        self.url = f"{url}/v1/models/{MODEL}/predict"
        self.pause = pause
        self.statuses: dict[int, int] = {}
        self.versions: dict[str, int] = {}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        rows = frames()[1].drop(columns=["target"]).to_dict("records")
        self._rows = [{k: float(v) for k, v in r.items()} for r in rows]
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)
        ]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    @property
    def total(self) -> int:
        return sum(self.statuses.values())

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.statuses.items() if s != 200) + len(self.errors)

    def _run(self, seed: int) -> None:
        i = seed
        with httpx.Client(trust_env=False, timeout=30) as client:
            while not self._stop.is_set():
                row = self._rows[i % len(self._rows)]
                i += 7
                try:
                    response = client.post(self.url, json={"records": [row]})
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(repr(exc))
                    continue
                with self._lock:
                    self.statuses[response.status_code] = (
                        self.statuses.get(response.status_code, 0) + 1
                    )
                    version = response.headers.get("x-model-version", "")
                    self.versions[version] = self.versions.get(version, 0) + 1
                if self.pause:
                    time.sleep(self.pause)
