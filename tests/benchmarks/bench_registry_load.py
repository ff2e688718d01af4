"""Resolve `models:/NAME@champion` and load it: opsloop (hashes checked) beside MLflow.

Target (issue 3): opsloop's resolve + load, with the SHA-256 of every artifact file
checked before deserializing, takes <= 1.2x the time of `mlflow.pyfunc.load_model` on the
same URI. Both load the same small scikit-learn model from the same SQLite registry in
one process, RUNS times each, interleaved (the order alternates every round), after one
warm-up each. Between rounds opsloop's artifact-location cache is cleared, so each load
asks the registry for the alias, the version and its location again, as MLflow does.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RUNS = int(os.environ.get("BENCH_RUNS", "30"))
TARGET_RATIO = 1.2


def _setup(root: Path) -> tuple[object, str]:
    """A project with the default model registered as bc@champion; (store, tracking URI)."""
    import opsloop_mlflow.plugin as mlflow_plugin
    import pandas as pd

    import opsloop
    from opsloop import registry
    from opsloop.interfaces import Dataset
    from opsloop.plugins import make_manager
    from opsloop.project import Project

    root.mkdir(parents=True)
    (root / "opsloop.toml").write_text('[project]\nname = "bench"\n')
    project = Project.open(root, plugins=make_manager(mlflow_plugin), environ={})
    frame = pd.read_csv(Path(opsloop.__file__).parent / "data" / "breast_cancer.csv")
    data = Dataset(name="bc", frame=frame, load_ids=["bench"], content_hash="bench")
    trained = project.hook.train_model(project=project, data=data, target="target", params={})
    ref = registry.register_model(project, "bc", trained, {"load_ids": ["bench"]})
    registry.set_alias(project, "bc", "champion", ref.version)
    store = registry.get_store(project)
    return store, store.config.tracking_uri  # type: ignore[attr-defined]


def main() -> dict[str, Any]:
    from opsloop_mlflow._vendor import import_mlflow

    import_mlflow()  # telemetry off before MLflow is imported
    import mlflow
    import mlflow.pyfunc
    import pandas as pd

    import opsloop

    store, uri = _setup(Path(tempfile.mkdtemp(prefix="opsloop-bench-registry-")) / "p")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    uri_alias = "models:/bc@champion"

    def load_mlflow() -> object:
        return mlflow.pyfunc.load_model(uri_alias)

    def load_opsloop() -> object:
        store._locations.clear()  # type: ignore[attr-defined]
        return store.load(store.resolve("bc", "@champion"))  # type: ignore[attr-defined]

    # Same model, same answers.
    frame = pd.read_csv(Path(opsloop.__file__).parent / "data" / "breast_cancer.csv").head(50)
    features = frame.drop(columns=["target"])
    a, b = load_mlflow(), load_opsloop()
    if list(a.predict(features)) != list(b.predict(features)):  # type: ignore[attr-defined]
        raise SystemExit("the two loaders disagree on predictions")
    problems = store.verify(store.resolve("bc", "@champion"))  # type: ignore[attr-defined]
    if problems:
        raise SystemExit(f"artifacts do not verify: {problems}")

    samples: dict[str, list[float]] = {"mlflow": [], "opsloop": []}
    loaders = {"mlflow": load_mlflow, "opsloop": load_opsloop}
    for i in range(RUNS):
        order = ("mlflow", "opsloop") if i % 2 == 0 else ("opsloop", "mlflow")
        for name in order:
            start = time.perf_counter()
            loaders[name]()
            samples[name].append(time.perf_counter() - start)

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "median_ms": round(statistics.median(values) * 1000, 2),
            "min_ms": round(min(values) * 1000, 2),
            "max_ms": round(max(values) * 1000, 2),
        }

    mlflow_stats, opsloop_stats = stats(samples["mlflow"]), stats(samples["opsloop"])
    ratio = statistics.median(samples["opsloop"]) / statistics.median(samples["mlflow"])
    prov = store.provenance(store.resolve("bc", "@champion"))  # type: ignore[attr-defined]
    report = {
        "benchmark": "registry_load",
        "runs": RUNS,
        "uri": uri_alias,
        "mlflow_pyfunc_load_model": mlflow_stats,
        "opsloop_resolve_and_load": opsloop_stats,
        "artifact_files_hashed_per_load": len(prov["artifacts"]["files"]),
        "ratio": round(ratio, 2),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "python": sys.version.split()[0],
        "mlflow": mlflow.__version__,
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
