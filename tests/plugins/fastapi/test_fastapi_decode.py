"""Decode limits: bodies that decode to too many rows or bytes are 413 before they decode."""

from __future__ import annotations

import io
import json
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient
from fastapi_testkit import MODEL, app_for, breast_cancer, features, one_row, store_of

PREDICT = f"/v1/models/{MODEL}/predict"
PARQUET = {"content-type": "application/vnd.apache.parquet"}
CSV = {"content-type": "text/csv"}


def client_for(project: Any, alias: str = "champion", **settings: Any) -> TestClient:
    return TestClient(app_for(project, alias, **settings), raise_server_exceptions=False)


def parquet(table: pa.Table, **options: Any) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", **options)
    return buffer.getvalue()


def bomb(rows: int = 1_000_000) -> bytes:
    """Every feature column of the signature, one constant value repeated ``rows`` times."""
    row = one_row()
    return parquet(pa.table({name: pa.repeat(pa.scalar(row[name]), rows) for name in features()}))


class NoteLength:
    """A model without a signature that reads a string column."""

    def predict(self, frame: pd.DataFrame) -> Any:
        return frame["note"].str.len().to_numpy()


@pytest.fixture
def notes(project_factory: Any) -> Any:
    project = project_factory()
    store_of(project).add(MODEL, NoteLength(), {}, aliases=("notes",))
    return project


@pytest.fixture
def never_decoded(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records every Parquet row group that is decoded."""
    calls: list[int] = []
    real = pq.ParquetFile.read_row_group

    def spy(self: Any, i: int, *args: Any, **kwargs: Any) -> Any:
        calls.append(i)
        return real(self, i, *args, **kwargs)

    monkeypatch.setattr(pq.ParquetFile, "read_row_group", spy)
    return calls


# ---------------------------------------------------------------------- Parquet
def test_the_parquet_bomb_is_413_from_its_footer(
    project_factory: Any, never_decoded: list[int]
) -> None:
    body = bomb()
    assert len(body) < 200_000  # a million rows in a small body: what max_body_bytes misses
    with client_for(project_factory()) as client:
        response = client.post("/invocations", content=body, headers=PARQUET)
        assert response.status_code == 413, response.text
        assert response.json()["error_code"] == "REQUEST_LIMIT_EXCEEDED"
        message = response.json()["message"]
        assert "1000000 rows, more than max_rows = 100000 (plugin.fastapi.max_rows)" in message
        assert 'kind="too_large"' in client.get("/metrics").text
    assert never_decoded == []


def test_rows_at_the_limit_score_and_one_more_is_413(project_factory: Any) -> None:
    frame = breast_cancer()[features()]
    with client_for(project_factory(), max_rows=10) as client:
        ok = client.post("/invocations", content=parquet(pa.Table.from_pandas(frame[:10])),
                         headers=PARQUET)  # fmt: skip
        assert ok.status_code == 200, ok.text
        assert len(ok.json()["predictions"]) == 10
        over = client.post("/invocations", content=parquet(pa.Table.from_pandas(frame[:11])),
                           headers=PARQUET)  # fmt: skip
        assert over.status_code == 413
        assert "11 rows, more than max_rows = 10" in over.json()["message"]


def test_parquet_fixed_width_size_is_checked_from_the_footer(
    project_factory: Any, never_decoded: list[int]
) -> None:
    with client_for(project_factory(), max_decoded_bytes=100_000) as client:
        response = client.post("/invocations", content=bomb(1_000), headers=PARQUET)
    assert response.status_code == 413
    message = response.json()["message"]
    assert "more than max_decoded_bytes = 100000 (plugin.fastapi.max_decoded_bytes)" in message
    assert "raise plugin.fastapi.max_decoded_bytes" in message
    assert never_decoded == []


def test_a_nested_list_is_counted_by_its_values(project_factory: Any) -> None:
    """One row holding a million-element list: the row count alone would let it through."""
    column = pa.array([[1.5] * 1_000_000], type=pa.list_(pa.float64()))
    body = parquet(pa.table({"values": column}))
    with client_for(project_factory(), max_decoded_bytes=1_000_000) as client:
        response = client.post("/invocations", content=body, headers=PARQUET)
    assert response.status_code == 413
    assert "max_decoded_bytes" in response.json()["message"]


def test_a_repeated_long_string_is_refused_from_its_dictionary(notes: Any) -> None:
    """50,000 rows of one 100 KB string: 5 GB decoded from a body of a few KB."""
    indices = pa.array([0] * 50_000, type=pa.int32())
    note = pa.DictionaryArray.from_arrays(indices, pa.array(["x" * 100_000]))
    body = parquet(pa.table({"note": note}))
    assert len(body) < 50_000
    with client_for(notes, "notes") as client:
        response = client.post("/invocations", content=body, headers=PARQUET)
    assert response.status_code == 413, response.text
    message = response.json()["message"]
    assert "would decode to about 4.7 GB" in message and "max_decoded_bytes" in message


def test_dictionary_strings_within_the_limits_score_as_plain_strings(notes: Any) -> None:
    values = ["a", "bb", None, "cccc", "bb"] * 3
    table = pa.table({"note": values, "tags": [["p", "q"]] * 15})
    with client_for(notes, "notes") as client:
        response = client.post("/invocations", content=parquet(table, row_group_size=4),
                               headers=PARQUET)  # fmt: skip
    assert response.status_code == 200, response.text
    expected = [None if v is None else len(v) for v in values]
    got = [None if p is None or p != p else int(p) for p in response.json()["predictions"]]
    assert got == expected


def test_a_broken_parquet_body_is_still_a_400(project_factory: Any) -> None:
    with client_for(project_factory()) as client:
        response = client.post("/invocations", content=b"PAR1 not really", headers=PARQUET)
    assert response.status_code == 400
    assert "not a valid Parquet table" in response.json()["message"]


# ---------------------------------------------------------------------- CSV
def test_csv_rows_over_the_limit_are_413(project_factory: Any) -> None:
    frame = breast_cancer()[features()]
    with client_for(project_factory(), max_rows=5) as client:
        ok = client.post("/invocations", content=frame[:5].to_csv(index=False), headers=CSV)
        assert ok.status_code == 200 and len(ok.json()["predictions"]) == 5
        over = client.post("/invocations", content=frame[:50].to_csv(index=False), headers=CSV)
    assert over.status_code == 413
    assert "more than max_rows = 5 (plugin.fastapi.max_rows)" in over.json()["message"]


def test_a_csv_header_of_300k_columns_is_refused_before_parsing(project_factory: Any) -> None:
    header = ",".join(f"c{i}" for i in range(300_000))
    body = header + "\n" + ",".join("1" for _ in range(300_000)) + "\n"
    with client_for(project_factory()) as client:
        response = client.post("/invocations", content=body, headers=CSV)
    assert response.status_code == 413
    assert "the CSV body would decode to about" in response.json()["message"]


# ---------------------------------------------------------------------- JSON
@pytest.mark.parametrize(
    "shape",
    ["records", "split", "dataframe_split", "dataframe_records", "instances", "inputs_columns"],
)
def test_json_rows_over_the_limit_are_413_in_every_shape(project_factory: Any, shape: str) -> None:
    rows = [one_row(i) for i in range(6)]
    columns = features()
    split = {"columns": columns, "data": [[r[c] for c in columns] for r in rows]}
    bodies = {
        "records": (PREDICT, {"records": rows}),
        "split": (PREDICT, split),
        "dataframe_split": ("/invocations", {"dataframe_split": split}),
        "dataframe_records": ("/invocations", {"dataframe_records": rows}),
        "instances": ("/invocations", {"instances": rows}),
        "inputs_columns": ("/invocations", {"inputs": {c: [r[c] for r in rows] for c in columns}}),
    }
    path, payload = bodies[shape]
    with client_for(project_factory(), max_rows=5) as client:
        response = client.post(path, json=payload)
    assert response.status_code == 413, response.text
    body = response.json()
    message = body["detail"] if path == PREDICT else body["message"]
    assert "the JSON body holds 6 rows, more than max_rows = 5 (plugin.fastapi.max_rows)" in message


def test_json_that_would_parse_too_big_is_refused_before_parsing(project_factory: Any) -> None:
    body = json.dumps({"records": [{}] * 20_000}).encode()  # 20k dicts from 80 KB
    with client_for(project_factory(), max_decoded_bytes=500_000, max_rows=1_000_000) as client:
        response = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
        assert response.status_code == 413
        assert "the JSON body would decode to about" in response.json()["detail"]
        one = client.post(PREDICT, json={"records": [one_row()]})
        assert one.status_code == 200  # a normal body is never counted


# ---------------------------------------------------------------------- validation
def test_100k_empty_records_stop_at_the_first_100_errors(project_factory: Any) -> None:
    """30 missing fields a row would be 3 million errors (70 s, 2.8 GB when all were built)."""
    body = json.dumps({"dataframe_records": [{}] * 100_000})
    with client_for(project_factory()) as client:
        response = client.post("/invocations", content=body,
                               headers={"content-type": "application/json"})  # fmt: skip
    assert response.status_code == 400
    payload = response.json()
    assert payload["message"].startswith("invalid input, at least ")
    assert len(payload["errors"]) == 100
    assert payload["errors"][0]["loc"] == ["dataframe_records", 0, features()[0]]


def test_a_row_far_wider_than_the_signature_is_refused_without_listing_every_key(
    project_factory: Any,
) -> None:
    row = {**one_row(), **{f"x{i}": 0 for i in range(200_000)}}
    with client_for(project_factory()) as client:
        response = client.post(PREDICT, json={"records": [one_row(), row]})
    assert response.status_code == 422
    body = response.json()
    assert len(body["errors"]) == 100
    assert body["errors"][0]["loc"] == ["records", 1, "x0"]
    assert "at least 200000 errors" in body["detail"]


def test_errors_past_the_first_chunk_name_their_row(project_factory: Any) -> None:
    rows = [one_row(i) for i in range(100)]
    rows[70] = {**rows[70], features()[3]: "high"}
    with client_for(project_factory()) as client:
        response = client.post(PREDICT, json={"records": rows})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"].startswith("invalid input, 1 error: ")
    assert [e["loc"] for e in body["errors"]] == [["records", 70, features()[3]]]


def test_records_with_a_different_key_each_are_refused_for_a_model_without_signature(
    notes: Any,
) -> None:
    """20,000 records, one distinct key each: a 20,000 x 20,000 frame from 300 KB."""
    records = [{f"k{i}": 1} for i in range(20_000)]
    with client_for(notes, "notes") as client:
        response = client.post("/invocations", json={"dataframe_records": records})
        assert response.status_code == 413
        assert "max_decoded_bytes" in response.json()["message"]
        ok = client.post("/invocations", json={"dataframe_records": [{"note": "abc"}] * 3})
        assert ok.status_code == 200 and ok.json()["predictions"] == [3, 3, 3]


def test_a_compressed_body_is_415_not_bad_json(project_factory: Any) -> None:
    import gzip

    body = gzip.compress(json.dumps({"dataframe_records": [one_row()]}).encode())
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    with client_for(project_factory()) as client:
        response = client.post("/invocations", content=body, headers=headers)
        assert response.status_code == 415
        assert "Content-Encoding 'gzip' is not supported" in response.json()["message"]
        plain = {"content-type": "application/json", "content-encoding": "identity"}
        same = client.post("/invocations", content=gzip.decompress(body), headers=plain)
        assert same.status_code == 200
