"""The after-predict path: batch hooks for monitors, GC-free log entries, lost-row counting."""

from __future__ import annotations

import gc
import re
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import (
    MODEL,
    RecorderPlugin,
    app_for,
    breast_cancer,
    features,
    trained_model,
)
from opsloop_fastapi.entries import (
    DATA,
    REQUEST_ID,
    RefTable,
    batch_table,
    build_batches,
    make_entry,
    merge_batches,
)

from opsloop import hookimpl
from opsloop.interfaces import PredictionBatch

PREDICT = f"/v1/models/{MODEL}/predict"


class BatchRecorder:
    """A monitor that keeps every batch it is handed (and can be told to raise)."""

    def __init__(self, fail: bool = False) -> None:
        self.batches: list[PredictionBatch] = []
        self.fail = fail

    @hookimpl
    def after_predict_batch(self, batch: PredictionBatch) -> None:
        self.batches.append(batch)
        if self.fail:
            raise RuntimeError("monitor bug")


def rows(start: int, stop: int) -> pd.DataFrame:
    return breast_cancer()[features()].iloc[start:stop].reset_index(drop=True)


def expected(frame: pd.DataFrame) -> list[int]:
    return [int(v) for v in trained_model().predict(frame)]


def post_rows(client: TestClient, frame: pd.DataFrame, request_id: str, route: str) -> Any:
    if route == "mlflow":
        body = {"dataframe_split": {"columns": list(frame.columns), "data": frame.values.tolist()}}
        response = client.post("/invocations", json=body, headers={"x-request-id": request_id})
    else:
        response = client.post(
            PREDICT,
            json={"records": frame.to_dict("records")},
            headers={"x-request-id": request_id},
        )
    assert response.status_code == 200, response.text
    return response.json()


def test_hook_after_predict_batch_gets_columnar_rows_in_request_order(project_factory: Any) -> None:
    monitor = BatchRecorder()
    project = project_factory(("batch-monitor", monitor))
    app = app_for(project)
    client = TestClient(app)  # no lifespan: the test drains the hook queue itself
    sent = [rows(i, i + 1) for i in range(5)] + [rows(10, 13)]
    answers = [
        post_rows(client, frame, f"req-{i}", "mlflow" if i % 2 else "v1")
        for i, frame in enumerate(sent)
    ]
    state = app.state.opsloop
    assert state.scorer.after.drain(timeout=10)
    (batch,) = monitor.batches  # one model version, one role, float inputs: one batch
    assert batch.model.name == MODEL and batch.model.version == "1"
    assert batch.role == "champion"
    assert len(batch) == 8
    assert batch.request_ids == [f"req-{i}" for i in range(5)] + ["req-5"] * 3
    assert batch.row_numbers.tolist() == [0, 0, 0, 0, 0, 0, 1, 2]
    assert batch.outputs == [p for a in answers for p in a["predictions"]]
    assert batch.outputs == expected(pd.concat(sent, ignore_index=True))
    assert batch.columns == tuple(features())
    assert np.array_equal(batch.features, pd.concat(sent).to_numpy(dtype=np.float64))
    pd.testing.assert_frame_equal(batch.inputs, pd.concat(sent, ignore_index=True))
    assert batch.latency_ms.dtype == np.float64 and (batch.latency_ms > 0).all()
    assert batch.logged_at.min() > 1.7e9  # epoch seconds
    assert batch.probabilities is not None  # /v1 answered with probabilities
    assert batch.probabilities[1] is None and len(batch.probabilities[0]) == 2


def test_without_the_log_the_after_predict_thread_calls_batch_hooks(
    project_factory: Any,
) -> None:
    monitor = BatchRecorder()
    project = project_factory(("batch-monitor", monitor))
    app = app_for(project, log_predictions=False)
    client = TestClient(app)
    for i in range(4):
        post_rows(client, rows(i, i + 1), f"nolog-{i}", "mlflow")
    state = app.state.opsloop
    assert state.prediction_log is None
    assert state.scorer.after.drain(timeout=10)
    assert [b.request_ids for b in monitor.batches] == [[f"nolog-{i}" for i in range(4)]]
    assert monitor.batches[0].features.tolist() == rows(0, 4).to_numpy().tolist()


def test_batch_hooks_and_the_log_share_one_conversion(project_factory: Any) -> None:
    monitor = BatchRecorder()
    project = project_factory(("batch-monitor", monitor))
    app = app_for(project)
    client = TestClient(app)
    for i in range(4):
        post_rows(client, rows(i, i + 1), f"shared-{i}", "mlflow")
    state = app.state.opsloop
    assert state.scorer.after.drain(timeout=10)
    # the log received the very batch objects the monitor saw, not the raw entries again
    assert list(state.prediction_log._deque) == monitor.batches
    assert state.prediction_log.flush(timeout=10)
    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert logged["request_id"].tolist() == [f"shared-{i}" for i in range(4)]
    assert logged[features()].to_numpy().tolist() == rows(0, 4).to_numpy().tolist()


def test_a_raising_batch_hook_is_counted_and_the_rows_are_still_logged(
    project_factory: Any,
) -> None:
    monitor = BatchRecorder(fail=True)
    project = project_factory(("batch-monitor", monitor))
    app = app_for(project)
    client = TestClient(app)
    answer = post_rows(client, rows(0, 2), "boom-1", "v1")
    assert answer["predictions"] == expected(rows(0, 2))
    state = app.state.opsloop
    assert state.scorer.after.drain(timeout=10)
    assert len(monitor.batches) == 1
    text = client.get("/metrics").text
    assert 'opsloop_serve_hook_errors_total{hook="after_predict_batch"} 1.0' in text
    assert state.prediction_log.flush(timeout=10)
    logged = project.hook.read_predictions(project=project, model=MODEL, since=None)
    assert logged["request_id"].tolist() == ["boom-1", "boom-1"]


def test_per_request_and_batch_hooks_both_run(project_factory: Any) -> None:
    monitor, recorder = BatchRecorder(), RecorderPlugin()
    project = project_factory(("batch-monitor", monitor), ("recorder", recorder))
    app = app_for(project)
    client = TestClient(app)
    post_rows(client, rows(0, 3), "both-1", "v1")
    assert app.state.opsloop.scorer.after.drain(timeout=10)
    (after,) = recorder.of("after", "both-1")
    assert after["outputs"] == expected(rows(0, 3)) and after["rows"] == 3
    assert [b.request_ids for b in monitor.batches] == [["both-1"] * 3]


class Raising:
    """A plugin whose after-predict hooks are broken."""

    @hookimpl
    def after_predict(self, context: Any) -> None:
        raise RuntimeError("per-request monitor bug")

    @hookimpl
    def after_predict_batch(self, batch: PredictionBatch) -> None:
        raise RuntimeError("batch monitor bug")


class Seen:
    """What the after-predict hooks of a working plugin were handed."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, Any, int, float]] = []
        self.batches: list[tuple[list[str], list[Any]]] = []

    @hookimpl
    def after_predict(self, context: Any) -> None:
        latency = context.latency_ms
        self.requests.append((context.request_id, context.outputs, len(context.inputs), latency))

    @hookimpl
    def after_predict_batch(self, batch: PredictionBatch) -> None:
        self.batches.append((batch.request_ids, list(batch.outputs)))


def hook_errors(metrics: str) -> dict[str, float]:
    """opsloop_serve_hook_errors_total by hook, from a /metrics page."""
    found = re.findall(r'^opsloop_serve_hook_errors_total\{hook="(\w+)"\} (\S+)$', metrics, re.M)
    return {hook: float(value) for hook, value in found}


@pytest.mark.parametrize("route", ["v1", "mlflow"])
def test_after_predict_hooks_behave_the_same_with_tracing_on_and_off(
    project_factory: Any, capfd: pytest.CaptureFixture[str], route: str
) -> None:
    # "raising" is registered last, so pluggy's order calls it first: the working plugin
    # must still see every request and batch, and each error is counted, traced or not.
    outcomes = {}
    for trace in ("0", "1"):
        seen = Seen()
        project = project_factory(
            ("seen", seen), ("raising", Raising()), environ={"OPSLOOP_TRACE_HOOKS": trace}
        )
        app = app_for(project)
        client = TestClient(app)
        capfd.readouterr()
        for i in range(3):
            post_rows(client, rows(i, i + 1 + i), f"trace{trace}-{i}", route)
        assert app.state.opsloop.scorer.after.drain(timeout=10)
        traced = capfd.readouterr().err
        requests = [(r[0].split("-")[1], r[1], r[2]) for r in seen.requests]
        assert all(r[3] is not None and r[3] > 0 for r in seen.requests)
        batches = [([i.split("-")[1] for i in ids], out) for ids, out in seen.batches]
        outcomes[trace] = (requests, batches, hook_errors(client.get("/metrics").text))
        calls = traced.count("[opsloop hook] after_predict(context=")
        failed = traced.count("[opsloop hook] after_predict = raised RuntimeError")
        batch_calls = traced.count("[opsloop hook] after_predict_batch(batch=")
        # traced: each plugin's call shows (two plugins, three requests, one batch)
        assert (calls, failed, batch_calls) == ((6, 3, 2) if trace == "1" else (0, 0, 0))
    requests, batches, errors = outcomes["0"]
    assert outcomes["1"] == outcomes["0"]
    assert requests == [
        ("0", expected(rows(0, 1)), 1),
        ("1", expected(rows(1, 3)), 2),
        ("2", expected(rows(2, 5)), 3),
    ]
    assert batches == [(["0", "1", "1", "2", "2", "2"], expected(rows(0, 1)) + expected(rows(1, 3))
                        + expected(rows(2, 5)))]  # fmt: skip
    assert errors == {"after_predict": 3.0, "after_predict_batch": 1.0}


@pytest.mark.parametrize("trace", ["0", "1"])
def test_implementations_are_called_one_by_one_in_pluggy_order(trace: str) -> None:
    from opsloop_fastapi.hookcalls import OneByOne

    from opsloop.plugins import make_manager

    called: list[str] = []

    class Early:
        @hookimpl(tryfirst=True)
        def after_predict(self, context: Any) -> None:
            called.append(f"early:{context}")

    class NoArgument:
        @hookimpl
        def after_predict(self) -> None:
            called.append("no-argument")

    class Wrapper:
        @hookimpl(wrapper=True)
        def after_predict(self, context: Any) -> Any:
            called.append("wrapper")
            return (yield)

    manager = make_manager(environ={"OPSLOOP_TRACE_HOOKS": trace})
    manager.register(Early(), name="early")
    manager.register(NoArgument(), name="no-argument")
    one_by_one = OneByOne(manager, "after_predict")
    calls = one_by_one.calls()
    assert [c.plugin for c in calls] == ["early", "no-argument"]  # tryfirst wins over LIFO
    for function, takes_arg, _ in calls:
        function("ctx") if takes_arg else function()
    assert called == ["early:ctx", "no-argument"]
    assert one_by_one.calls() is calls  # unchanged plugins: the same list, no rebuild
    manager.register(Wrapper(), name="wrapper")
    called.clear()
    (wrapped,) = one_by_one.calls()  # a wrapper wraps them all: one call, as pluggy makes it
    wrapped.function("ctx")
    assert called == ["wrapper", "early:ctx", "no-argument"]


def test_queued_log_entries_are_not_tracked_by_the_gc(project_factory: Any) -> None:
    # The hot path leaves plain tuples of atoms: after one collection the GC stops tracking
    # them, so thousands of waiting entries add nothing to later collections.
    project = project_factory()
    app = app_for(project)
    client = TestClient(app)  # no lifespan: entries stay queued
    for i in range(3):
        post_rows(client, rows(i, i + 1), f"gc-{i}", "mlflow")
    queued = list(app.state.opsloop.prediction_log._deque)
    assert [e[REQUEST_ID] for e in queued] == ["gc-0", "gc-1", "gc-2"]
    assert all(type(e) is tuple and isinstance(e[DATA], bytes) for e in queued)
    gc.collect()
    assert not any(gc.is_tracked(e) for e in queued)


def test_build_batches_groups_and_reports_what_it_cannot_batch() -> None:
    names = tuple(features())
    good = [
        make_entry(1.7e9 + i, f"g{i}", MODEL, "1", "champion", 0.1, rows(i, i + 1).to_numpy(),
                   names, None, [0])
        for i in range(3)
    ]  # fmt: skip
    challenger = make_entry(
        1.7e9, "c0", MODEL, "2", "challenger", 0.2, rows(5, 6).to_numpy(), names, None, [1]
    )
    frame_entry = make_entry(
        1.7e9, "f0", MODEL, "1", "champion", 0.3, None, None, rows(6, 8), [1, 0]
    )
    broken = (*good[0][:DATA], b"\x00" * 7, *good[0][DATA + 1 :])  # 7 bytes: not 30 floats
    refs = RefTable()
    batches, failed = build_batches([good[0], challenger, good[1], frame_entry, good[2]], refs)
    assert [(b.model.version, b.role, b.request_ids) for b in batches] == [
        ("1", "champion", ["g0", "g1", "g2"]),
        ("2", "challenger", ["c0"]),
        ("1", "champion", ["f0", "f0"]),
    ]
    assert failed == []
    assert batches[2].frame is not None and batches[2].row_numbers.tolist() == [0, 1]
    table = batch_table(batches[2])
    assert table.column("input." + names[0]).to_pylist() == rows(6, 8)[names[0]].tolist()
    batches, failed = build_batches([broken, challenger], refs)
    assert failed == [broken]
    assert [b.request_ids for b in batches] == [["c0"]]


def test_broken_entries_are_counted_as_dropped_not_lost_silently(project_factory: Any) -> None:
    from opsloop_fastapi.predlog import PredictionLog

    dropped: list[int] = []
    log = PredictionLog(project_factory().home / "predictions", on_dropped=dropped.append)
    names = tuple(features())
    good = make_entry(1.7e9, "ok", MODEL, "1", "champion", 0.1, rows(0, 1).to_numpy(), names,
                      None, [0])  # fmt: skip
    broken = (*good[:DATA], b"\x00" * 7, *good[DATA + 1 :])
    log.submit(good)
    log.submit(broken)
    assert log.flush(timeout=10)
    assert log.written_rows == 1 and dropped == [1]


@pytest.mark.parametrize("outputs", [[["a", 1]], [1.5], ["yes"]])
def test_one_row_outputs_keep_their_shape(outputs: list[Any]) -> None:
    names = tuple(features())
    entry = make_entry(1.7e9, "r", MODEL, "1", "champion", 0.1, rows(0, 1).to_numpy(), names,
                       None, outputs)  # fmt: skip
    (batch,), failed = build_batches([entry])
    assert failed == [] and batch.outputs == outputs


def test_merge_batches_joins_runs_of_one_group_column_major() -> None:
    names = tuple(features())

    def entry(i: int, version: str = "1", role: str = "champion", proba: Any = None) -> Any:
        return make_entry(1.7e9 + i, f"r{i}", MODEL, version, role, 0.1 * i,
                          rows(i, i + 1).to_numpy(), names, None, [i % 2], proba)  # fmt: skip

    refs = RefTable()
    first = build_batches([entry(0), entry(1)], refs)[0]
    second = build_batches([entry(2, proba=np.array([[0.25, 0.75]]))], refs)[0]
    other = build_batches([entry(3, version="2", role="challenger")], refs)[0]
    third = build_batches([entry(4)], refs)[0]
    merged = merge_batches([*first, *second, *other, *third])
    assert [(b.model.version, b.role, b.request_ids) for b in merged] == [
        ("1", "champion", ["r0", "r1", "r2"]),
        ("2", "challenger", ["r3"]),
        ("1", "champion", ["r4"]),
    ]  # only consecutive batches of one group merge: request order is kept
    run = merged[0]
    assert run.probabilities == [None, None, [0.25, 0.75]]
    assert run.outputs == [0, 1, 0] and run.latency_ms.tolist() == pytest.approx([0, 0.1, 0.2])
    np.testing.assert_array_equal(run.features, rows(0, 3).to_numpy())
    assert run.features.T.flags.c_contiguous  # each column reaches Arrow without a copy
    table = batch_table(run)
    assert table.column("input." + names[4]).to_pylist() == rows(0, 3)[names[4]].tolist()
    assert table.column("model_version").to_pylist() == ["1", "1", "1"]
    assert merge_batches([]) == [] and merge_batches(first) == first


@pytest.mark.parametrize("codec", ["lz4", "zstd", "none"])
def test_the_log_codec_is_a_setting_and_duckdb_reads_it(project_factory: Any, codec: str) -> None:
    import pyarrow.parquet as pq
    from opsloop_fastapi.predlog import PredictionLog, model_dir, read_log
    from opsloop_fastapi.settings import Settings

    assert Settings().log_compression == "lz4"  # the cheapest codec for the serving core
    folder = model_dir(project_factory().home / "predictions", MODEL)
    log = PredictionLog(folder, compression=codec)
    names = tuple(features())
    for i in range(5):
        log.submit(make_entry(1.7e9 + i, f"c{i}", MODEL, "1", "champion", 0.1,
                              rows(i, i + 1).to_numpy(), names, None, [i % 2]))  # fmt: skip
    assert log.close(timeout=10)
    (path,) = folder.rglob("*.parquet")
    written = pq.ParquetFile(path).metadata.row_group(0).column(0).compression
    assert written.upper().startswith({"lz4": "LZ4", "zstd": "ZSTD", "none": "UNCOMPRESSED"}[codec])
    frame = read_log(folder, MODEL)
    assert frame is not None and sorted(frame["request_id"]) == [f"c{i}" for i in range(5)]
