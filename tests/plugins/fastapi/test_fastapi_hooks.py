"""The serve hooks opsloop-fastapi answers, reached through the core's opsloop.serve.

The request hooks the server itself calls are tested where the server is exercised:
``test_hook_before_predict_*``, ``test_hook_after_predict_*`` and ``test_hook_on_predict_error_*``
in test_fastapi_serving.py, ``test_hook_after_predict_batch_*`` in test_fastapi_monitor_hooks.py
and ``test_hook_read_predictions_*`` in test_fastapi_lifecycle.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
from fastapi_testkit import MODEL, breast_cancer, features, store_of, trained_model

from opsloop import serve


def test_hook_start_server(project_factory: Any) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    handle = serve.start_server(project, ref, "127.0.0.1", 0)  # port 0: a free port
    try:
        assert handle.url.startswith("http://127.0.0.1:") and not handle.url.endswith(":0")
        with httpx.Client(base_url=handle.url, trust_env=False, timeout=30) as client:
            assert client.get("/ready").json()["ready"] is True
            row = breast_cancer()[features()].iloc[:3]
            answer = client.post("/invocations", json={"dataframe_records": row.to_dict("records")})
            assert answer.json()["predictions"] == trained_model().predict(row).tolist()
            assert answer.headers["x-model-version"] == ref.version
    finally:
        handle.stop()
    (start, stop) = [e for e in project.audit.entries() if e["action"].startswith("serve.")]
    assert (start["action"], start["after"]["url"]) == ("serve.start", handle.url)
    assert (stop["action"], stop["target"]) == ("serve.stop", f"{MODEL}/{ref.version}")


def test_hook_score_batch(project_factory: Any, tmp_path: Path) -> None:
    project = project_factory()
    ref = store_of(project).resolve(MODEL, "champion")
    frame = breast_cancer()[features()]
    source = tmp_path / "patients.csv"
    frame.to_csv(source, index=False)
    rows = serve.score_batch(project, ref, source, tmp_path / "scored")
    assert rows == len(frame) == 569
    parts = sorted((tmp_path / "scored").glob("part-*.parquet"))
    out = pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
    assert out["prediction"].tolist() == trained_model().predict(frame).tolist()
    np.testing.assert_allclose(out["probability_1"], trained_model().predict_proba(frame)[:, 1])
    (batch,) = [e for e in project.audit.entries() if e["action"] == "serve.batch"]
    assert batch["after"] == {"input": str(source), "output": str(tmp_path / "scored"), "rows": 569}
