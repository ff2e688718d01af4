"""Signature-driven input validation and output encoding, without a server."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from opsloop_fastapi.outputs import to_jsonable
from opsloop_fastapi.schema import InputError, InputSchema, parse_signature

MIXED = {
    "inputs": [
        {"name": "age", "type": "long"},
        {"name": "score", "type": "double"},
        {"name": "city", "type": "string"},
        {"name": "vip", "type": "boolean", "required": False},
    ]
}


def test_mlflow_json_text_signature_is_understood() -> None:
    as_mlflow_writes_it = {"inputs": json.dumps(MIXED["inputs"]), "outputs": None}
    columns = parse_signature(as_mlflow_writes_it)
    assert columns is not None
    assert [(c.name, c.type, c.required) for c in columns] == [
        ("age", "long", True),
        ("score", "double", True),
        ("city", "string", True),
        ("vip", "boolean", False),
    ]
    tensor = {"inputs": [{"type": "tensor", "tensor-spec": {"dtype": "float64", "shape": [-1]}}]}
    assert parse_signature(tensor) is None
    assert parse_signature({}) is None


def test_types_are_enforced_and_optional_columns_default_to_null() -> None:
    schema = InputSchema.from_signature("shop", MIXED)
    frame = schema.frame_from_records([{"age": 41, "score": 3, "city": "Oslo"}], ("records",))
    assert frame.to_dict("records") == [{"age": 41, "score": 3.0, "city": "Oslo", "vip": None}]
    assert str(frame["age"].dtype) == "int64" and str(frame["score"].dtype) == "float64"
    with pytest.raises(InputError) as caught:
        schema.frame_from_records(
            [{"age": 41.5, "score": "3", "city": 7, "vip": "yes"}], ("records",)
        )
    assert caught.value.fields == ["age", "city", "score", "vip"]
    assert caught.value.total == 4


def test_without_a_signature_rows_pass_through() -> None:
    schema = InputSchema.from_signature("free", None)
    frame = schema.frame_from_mlflow({"inputs": {"a": [1, 2], "b": ["x", "y"]}})
    assert frame.to_dict("list") == {"a": [1, 2], "b": ["x", "y"]}
    with pytest.raises(InputError, match="must be a non-empty list of rows"):
        schema.frame_from_mlflow({"instances": [[1, 2]]})  # positional rows need a signature


def test_many_bad_rows_are_reported_with_a_cap() -> None:
    schema = InputSchema.from_signature("shop", MIXED)
    with pytest.raises(InputError) as caught:
        schema.frame_from_records([{"age": "x", "score": 1.0, "city": "a"}] * 500, ("records",))
    assert caught.value.total == 500
    assert len(caught.value.errors) == 100
    assert "(and 490 more)" in caught.value.message


def test_outputs_become_json_ready_lists() -> None:
    assert to_jsonable(np.array([1, 0, 1])) == [1, 0, 1]
    assert to_jsonable(np.array([0.5, np.nan, np.inf])) == [0.5, None, None]
    assert to_jsonable(pd.Series(["a", "b"])) == ["a", "b"]
    assert to_jsonable(pd.DataFrame({"p": [0.25], "label": [np.int64(1)]})) == [
        {"p": 0.25, "label": 1}
    ]
    assert to_jsonable(np.float64(2.5)) == [2.5]
