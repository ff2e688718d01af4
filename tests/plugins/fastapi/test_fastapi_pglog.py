"""The prediction log in PostgreSQL (log_format = "postgres"), against the local server."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import psycopg
import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import (
    FAST_LOG,
    MODEL,
    RecorderPlugin,
    app_for,
    breast_cancer,
    features,
    one_row,
)
from opsloop_fastapi.entries import make_entry
from opsloop_fastapi.logframe import META_COLUMNS
from opsloop_fastapi.pglog import PostgresStore, catalog, read_log_postgres, store_for
from opsloop_fastapi.predlog import PredictionLog
from opsloop_fastapi.settings import LOG_POSTGRES_URL_ENV, Settings

from opsloop.errors import ConfigError

POSTGRES_URL = os.environ.get(
    "OPSLOOP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
PREDICT = f"/v1/models/{MODEL}/predict"


@pytest.fixture(autouse=True)
def no_url_in_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(LOG_POSTGRES_URL_ENV, raising=False)


@pytest.fixture
def pg_table() -> Iterator[str]:
    """A fresh table name; the table and its feedback table are dropped afterwards."""
    table = f"opsloop_test_{uuid.uuid4().hex[:12]}"
    yield table
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}, {table}_feedback")


def pg_config(table: str, url: str = POSTGRES_URL) -> str:
    return (
        FAST_LOG + f'log_format = "postgres"\nlog_postgres_url = "{url}"\n'
        f'log_postgres_table = "{table}"\n'
    )


def columns_of(table: str) -> dict[str, str]:
    with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
        return catalog(conn, table)


def entry(request_id: str, columns: tuple[str, ...], values: list[list[float]], **kw: Any) -> Any:
    """A scored request of model "m" as the server queues it."""
    predictions = kw.get("predictions", [0] * len(values))
    return make_entry(
        kw.get("ts", time.time()), request_id, "m", kw.get("version", "1"), "champion", 0.25,
        np.array(values, dtype=np.float64), columns, None, predictions,
    )  # fmt: skip


# ---------------------------------------------------------------------- (a) the server
def test_server_logs_every_request_and_reads_back_like_parquet(
    project_factory: Any, pg_table: str
) -> None:
    recorder = RecorderPlugin()
    pg = project_factory(("recorder", recorder), config=pg_config(pg_table))
    parquet = project_factory()
    singles = [one_row(i) for i in range(5)]
    multi = breast_cancer()[features()].iloc[10:13].to_dict("records")
    labels = [
        {"request_id": "req-0", "label": 1},
        {"request_id": "multi", "row": 2, "label": 0},
        {"request_id": "req-0", "label": 0},  # a correction in the same request: the last wins
        {"request_id": "req-3", "label": 1},
    ]
    start = pd.Timestamp.now(tz="UTC")
    for project in (pg, parquet):
        app = app_for(project)
        with TestClient(app) as client:
            for i, row in enumerate(singles):
                response = client.post(
                    PREDICT, json={"records": [row]}, headers={"x-request-id": f"req-{i}"}
                )
                assert response.status_code == 200, response.text
            response = client.post(
                PREDICT, json={"records": multi}, headers={"x-request-id": "multi"}
            )
            assert response.status_code == 200
            assert client.post("/v1/feedback", json={"items": labels}).json()["accepted"] == 4
        state = app.state.opsloop  # stopped: the after-predict thread and the logs drained
        assert state.prediction_log.written_rows == 8 and state.prediction_log.dropped_rows == 0
        assert state.feedback_log.written_rows == 4
    assert not list((pg.home / "predictions").rglob("*.parquet"))  # nothing went to files

    got = pg.hook.read_predictions(project=pg, model=MODEL, since=None)
    want = parquet.hook.read_predictions(project=parquet, model=MODEL, since=None)
    # one frame shape: features, then the metadata, then probabilities; same dtypes
    assert list(got.columns) == [*features(), *META_COLUMNS, "probabilities"]
    assert list(got.columns) == list(want.columns)
    assert got.dtypes.astype(str).to_dict() == want.dtypes.astype(str).to_dict()
    assert str(got["logged_at"].dtype).endswith("UTC]")
    # every request, with what was sent and what was answered
    ids = [f"req-{i}" for i in range(5)] + ["multi"] * 3
    assert got["request_id"].tolist() == ids and got["row"].tolist() == [0] * 5 + [0, 1, 2]
    sent = pd.DataFrame(singles + multi)
    pd.testing.assert_frame_equal(got[features()], sent, check_exact=True)
    assert set(got["model_version"]) == {"1"} and set(got["role"]) == {"champion"}
    for request_id, latency in zip(got["request_id"], got["latency_ms"], strict=True):
        assert latency == recorder.of("after", request_id)[0]["latency_ms"] > 0
    assert got["logged_at"].between(start, pd.Timestamp.now(tz="UTC")).all()
    for column in ("request_id", "row", "prediction", "label"):
        pd.testing.assert_series_equal(got[column], want[column])
    assert got.set_index(["request_id", "row"])["label"].dropna().to_dict() == {
        ("req-0", 0): 0,
        ("req-3", 0): 1,
        ("multi", 2): 0,
    }
    for a, b in zip(got["probabilities"], want["probabilities"], strict=True):
        assert type(a) is type(b) and np.array_equal(a, b) and len(a) == 2

    # the table: typed columns, one row per scored row
    table = columns_of(pg_table)
    assert table["input.mean_radius"] == "double precision"
    assert (table["logged_at"], table["row"]) == ("timestamp with time zone", "bigint")
    assert (table["prediction"], table["probabilities"]) == ("bigint", "double precision[]")
    # since and roles are applied in SQL
    third = got.loc[got["request_id"] == "req-3", "logged_at"].iloc[0]
    later = pg.hook.read_predictions(project=pg, model=MODEL, since=third.isoformat())
    assert later["request_id"].tolist() == ["req-3", "req-4", "multi", "multi", "multi"]
    assert later["label"].fillna(-1).tolist() == [1, -1, -1, -1, 0]
    shadow = read_log_postgres(POSTGRES_URL, pg_table, MODEL, roles=("shadow",))
    assert shadow is not None and shadow.empty and list(shadow.columns) == list(META_COLUMNS)
    assert pg.hook.read_predictions(project=pg, model="another-model", since=None) is None


# ---------------------------------------------------------------------- (b) replicas
def test_two_writers_append_to_one_table(tmp_path: Path, pg_table: str) -> None:
    logs = [
        PredictionLog(
            tmp_path / f"replica{n}", fmt="postgres", store=PostgresStore(POSTGRES_URL, pg_table)
        )
        for n in range(2)
    ]
    columns = ("a", "b")
    barrier = threading.Barrier(2)
    results: list[bool] = []

    def replica(n: int) -> None:
        log = logs[n]
        for i in range(50):
            values = [[n, i]] if i % 5 else [[n, i], [n, i + 0.5]]  # some two-row requests
            log.submit(entry(f"r{n}-{i}", columns, values))
        barrier.wait()  # both create the table at once
        results.append(log.close(timeout=20))

    threads = [threading.Thread(target=replica, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [True, True]
    assert [log.written_rows for log in logs] == [60, 60]
    assert [log.dropped_rows for log in logs] == [0, 0]
    frame = read_log_postgres(POSTGRES_URL, pg_table, "m")
    assert frame is not None and len(frame) == 120
    assert list(frame.columns[:2]) == ["a", "b"]
    assert set(frame["request_id"]) == {f"r{n}-{i}" for n in range(2) for i in range(50)}
    by_id = frame.groupby("request_id")
    assert by_id.size()["r1-5"] == 2 and by_id["b"].max()["r1-5"] == 5.5
    assert (frame["a"] == frame["request_id"].str[1].astype(float)).all()


# ---------------------------------------------------------------------- (c) new columns
def test_a_new_input_column_is_added_and_a_wider_prediction_widens_the_column(
    tmp_path: Path, pg_table: str
) -> None:
    log = PredictionLog(tmp_path / "m", fmt="postgres", store=PostgresStore(POSTGRES_URL, pg_table))
    log.submit(entry("v1", ("a", "b"), [[1.0, 2.0]], predictions=[1]))
    assert log.flush(timeout=10)
    first = columns_of(pg_table)
    assert "input.c" not in first and first["prediction"] == "bigint"

    # the next model version sends a third input and answers with floats
    log.submit(entry("v2", ("a", "b", "c"), [[3.0, 4.0, 5.0]], predictions=[0.25], version="2"))
    assert log.flush(timeout=10) and log.dropped_rows == 0 and log.written_rows == 2
    second = columns_of(pg_table)
    assert second["input.c"] == "double precision"
    assert second["prediction"] == "double precision"  # ALTER COLUMN ... TYPE, values kept

    # a replica that saw the table before keeps writing (its column cache is stale)
    other = PredictionLog(
        tmp_path / "m2", fmt="postgres", store=PostgresStore(POSTGRES_URL, pg_table)
    )
    other.submit(entry("v1-again", ("a", "b"), [[6.0, 7.0]], predictions=[0]))
    assert other.close(timeout=10) and other.written_rows == 1

    frame = read_log_postgres(POSTGRES_URL, pg_table, "m")
    assert frame is not None
    assert frame["request_id"].tolist() == ["v1", "v2", "v1-again"]
    assert list(frame.columns[:3]) == ["a", "b", "c"]
    assert frame["c"].isna().tolist() == [True, False, True] and frame["c"][1] == 5.0
    assert frame["prediction"].tolist() == [1.0, 0.25, 0.0]
    assert frame["model_version"].tolist() == ["1", "2", "1"]
    log.close()


def test_a_connection_closed_by_the_server_is_replaced_without_losing_rows(
    tmp_path: Path, pg_table: str
) -> None:
    store = PostgresStore(POSTGRES_URL, pg_table)
    log = PredictionLog(tmp_path / "m", fmt="postgres", store=store)
    log.submit(entry("before", ("a",), [[1.0]]))
    assert log.flush(timeout=10) and log.written_rows == 1
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:  # an idle timeout, a restart
        admin.execute("SELECT pg_terminate_backend(%s)", [store._conn.info.backend_pid])
    log.submit(entry("after", ("a",), [[2.0]]))
    assert log.flush(timeout=10)
    assert (log.written_rows, log.dropped_rows) == (2, 0)
    frame = read_log_postgres(POSTGRES_URL, pg_table, "m")
    assert frame is not None and frame["request_id"].tolist() == ["before", "after"]
    log.close()


# ---------------------------------------------------------------------- (d) failures
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://postgres:{secret}@127.0.0.1:1/test",  # nothing listens on port 1
        "postgress://postgres:{secret}@127.0.0.1:1/test",  # libpq quotes a malformed URL
        "host=127.0.0.1 port=1 user=postgres password={secret} dbname=test",
    ],
)
def test_an_unreachable_database_drops_and_counts_rows_and_never_logs_the_password(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, url: str
) -> None:
    secret = "S3cret-pw-" + uuid.uuid4().hex[:8]
    url = url.format(secret=secret)
    dropped: list[int] = []
    store = PostgresStore(url, "opsloop_never_created")
    log = PredictionLog(tmp_path / "m", fmt="postgres", store=store, on_dropped=dropped.append)
    with caplog.at_level(logging.ERROR):
        assert log.submit(entry("x1", ("a",), [[1.0], [2.0], [3.0]]))
        assert log.submit(entry("x2", ("a",), [[4.0]]))
        assert log.flush(timeout=10)  # returns: nothing is raised into the caller
        log.submit(entry("x3", ("a",), [[5.0]]))  # the next write tries again, and fails again
        assert log.close(timeout=10)
    assert (log.dropped_rows, log.written_rows, sum(dropped)) == (5, 0, 5)
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 2 and "could not write 4 rows to" in errors[0].getMessage()
    assert "opsloop_never_created" in caplog.text
    assert secret not in caplog.text and secret not in repr(store) and secret not in str(store)


def test_the_server_answers_while_the_database_is_down(project_factory: Any, pg_table: str) -> None:
    project = project_factory(config=pg_config(pg_table, "postgresql://postgres:pw@127.0.0.1:1/x"))
    app = app_for(project)
    with TestClient(app) as client:
        for i in range(3):
            assert client.post(PREDICT, json={"records": [one_row(i)]}).status_code == 200
        assert client.post("/v1/feedback", json={"request_id": "r", "label": 1}).status_code == 202
    state = app.state.opsloop  # stopped: the after-predict thread and the logs drained
    assert state.prediction_log.dropped_rows == 3 and state.feedback_log.dropped_rows == 1
    text = TestClient(app).get("/metrics").text
    assert f'opsloop_prediction_log_dropped_rows_total{{model="{MODEL}"}} 3.0' in text
    assert f'opsloop_feedback_rows_total{{model="{MODEL}",outcome="dropped"}} 1.0' in text


# ---------------------------------------------------------------------- (e) settings
def test_postgres_without_a_url_is_one_clear_config_error(
    project_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_factory(config='[plugin.fastapi]\nlog_format = "postgres"\n')
    with pytest.raises(ConfigError) as info:
        project.settings("fastapi")
    message = str(info.value)
    assert "\n" not in message
    assert 'log_format = "postgres" needs a database URL' in message
    assert "plugin.fastapi.log_postgres_url" in message and "$OPSLOOP_LOG_POSTGRES_URL" in message
    with pytest.raises(ConfigError, match="needs a database URL"):
        store_for(Settings(log_format="postgres"), "predictions")  # settings made in code
    # the variable is enough, and it wins over the file (read from the environment the
    # project is opened with)
    monkeypatch.setenv(LOG_POSTGRES_URL_ENV, "postgresql://from-env@db/x")
    project = project_factory(config='[plugin.fastapi]\nlog_format = "postgres"\n')
    assert project.settings("fastapi").postgres_url() == "postgresql://from-env@db/x"
    in_file = Settings(log_format="postgres", log_postgres_url="postgresql://file@db/x")
    assert in_file.postgres_url() == "postgresql://from-env@db/x"
    assert in_file.postgres_url(environ={}) == "postgresql://file@db/x"
    assert "file@db" not in repr(in_file)  # a SecretStr


@pytest.mark.parametrize(
    "name", ["Predictions", "log-table", "x; DROP TABLE y", "1st", "a" * 41, "", "schema.t"]
)
def test_an_unsafe_table_name_is_one_clear_config_error(project_factory: Any, name: str) -> None:
    project = project_factory(
        config=f'[plugin.fastapi]\nlog_postgres_url = "postgresql://u:hunter2pw@h/d"\n'
        f'log_postgres_table = "{name}"\n'
    )
    with pytest.raises(ConfigError) as info:
        project.settings("fastapi")
    message = str(info.value)
    assert "\n" not in message and "hunter2pw" not in message
    assert "'plugin.fastapi.log_postgres_table'" in message
    assert "must be a plain table name: lowercase letters" in message and repr(name) in message


def test_the_cli_modules_do_not_import_psycopg() -> None:
    probe = (
        "import sys, opsloop_fastapi.plugin, opsloop_fastapi.cli, opsloop_fastapi.settings, "
        "opsloop_fastapi.predlog, opsloop_fastapi.pglog, opsloop_fastapi.app; "
        "print('psycopg' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == "False"


def test_rows_logged_on_another_day_are_found_by_since(tmp_path: Path, pg_table: str) -> None:
    log = PredictionLog(tmp_path / "m", fmt="postgres", store=PostgresStore(POSTGRES_URL, pg_table))
    days = [datetime(2026, 11, d, 23, 59, 59, 999_999, tzinfo=UTC).timestamp() for d in (26, 27)]
    for i, ts in enumerate(days):
        log.submit(entry(f"d{i}", ("a",), [[float(i)]], ts=ts))
    assert log.close(timeout=10) and log.written_rows == 2
    since = datetime(2026, 11, 27, tzinfo=UTC)
    frame = read_log_postgres(POSTGRES_URL, pg_table, "m", since)
    assert frame is not None and frame["request_id"].tolist() == ["d1"]
    assert frame["logged_at"].iloc[0] == pd.Timestamp("2026-11-27T23:59:59.999999Z")
