"""Request validation built from the model signature: pydantic models, frames, field errors.

One :class:`InputSchema` per served model version turns every accepted request shape
(records, split, MLflow's four scoring formats, CSV, Parquet) into a typed DataFrame, or
raises :class:`InputError` naming each bad field. Its pydantic models also feed OpenAPI.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    Strict,
    TypeAdapter,
    ValidationError,
    create_model,
)

if TYPE_CHECKING:
    import pandas as pd

MLFLOW_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
NUMERIC_FAST_TYPES = frozenset({"double"})
MAX_REPORTED_ERRORS = 100
# Rows validated per pydantic call: pydantic builds every error of a call (about 23 µs and
# 1 KB each), so one call over 100,000 empty rows would build 3 million of them (70 s,
# 2.8 GB here). Validation goes in chunks and stops counting past ERROR_BUDGET errors
# (about 0.1 s); the message then says "at least".
VALIDATE_CHUNK = 32
ERROR_BUDGET = 5_000

_Float = Annotated[float, Strict(), AllowInfNan(False)]
_Int = Annotated[int, Strict()]
_Bool = Annotated[bool, Strict()]
_Str = Annotated[str, Strict()]

#: MLflow column types -> (pydantic type, pandas dtype applied when the column has no nulls).
COLUMN_TYPES: dict[str, tuple[Any, str | None]] = {
    "double": (_Float, "float64"),
    "float": (_Float, "float32"),
    "long": (_Int, "int64"),
    "integer": (_Int, "int32"),
    "boolean": (_Bool, "bool"),
    "string": (_Str, None),
    "datetime": (datetime, None),
    "binary": (_Str, None),  # base64 text, as MLflow's JSON encoding sends it
}

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ColumnSpec:
    """One input column of the signature."""

    name: str
    type: str  # MLflow type name; unknown types validate presence only
    required: bool = True


class InputError(Exception):
    """A request body the model cannot take; ``errors`` name each bad field."""

    def __init__(
        self, errors: list[dict[str, Any]], total: int | None = None, *, complete: bool = True
    ) -> None:
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total = total if total is not None else len(errors)
        self.complete = complete  # False: validation stopped early; total is a lower bound
        super().__init__(self.message)

    @classmethod
    def body(cls, msg: str, type_: str) -> InputError:
        """An error about the body as a whole (not valid JSON, wrong shape)."""
        return cls([_error((), msg, type_)])

    @property
    def fields(self) -> list[str]:
        """Names of the bad fields (columns or body keys), sorted."""
        return sorted({str(e["field"]) for e in self.errors if e.get("field") is not None})

    @property
    def message(self) -> str:
        shown = "; ".join(f"{_format_loc(e['loc'])}: {e['msg']}" for e in self.errors[:10])
        least = "" if self.complete else "at least "
        more = f" (and {least}{self.total - 10} more)" if self.total > 10 else ""
        noun = "error" if self.total == 1 and self.complete else "errors"
        return f"invalid input, {least}{self.total} {noun}: {shown}{more}"


def _format_loc(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def _error(loc: Loc, msg: str, type_: str, field: str | None = None) -> dict[str, Any]:
    return {"loc": list(loc), "field": field, "msg": msg, "type": type_}


def parse_signature(signature: Mapping[str, Any] | None) -> list[ColumnSpec] | None:
    """Column specs from ``ref.signature``; None when there is no column-based signature."""
    inputs: Any = (signature or {}).get("inputs")
    if isinstance(inputs, str):  # MLflow's ModelSignature.to_dict() keeps JSON text
        try:
            inputs = json.loads(inputs)
        except ValueError:
            return None
    if not isinstance(inputs, list) or not inputs:
        return None
    columns: list[ColumnSpec] = []
    for item in inputs:
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            return None  # tensor-based or unnamed inputs: accept frames unvalidated
        columns.append(
            ColumnSpec(
                name=item["name"],
                type=str(item.get("type", "")).lower(),
                required=bool(item.get("required", True)),
            )
        )
    return columns


def _class_name(model_name: str, suffix: str) -> str:
    base = re.sub(r"\W+", "_", model_name).strip("_") or "Model"
    return f"{base[0].upper()}{base[1:]}{suffix}"


class InputSchema:
    """Validation and OpenAPI models for one model version's inputs."""

    def __init__(self, model_name: str, columns: list[ColumnSpec] | None) -> None:
        self.model_name = model_name
        self.columns = columns
        self.names: list[str] | None = [c.name for c in columns] if columns else None
        self.row_model = self._build_row_model()
        self._rows_adapter: TypeAdapter[Any] | None = (
            TypeAdapter(list[self.row_model]) if columns else None  # type: ignore[name-defined]
        )
        self._dtypes: dict[str, str | None] = (
            {c.name: COLUMN_TYPES[c.type][1] for c in columns if c.type in COLUMN_TYPES}
            if columns
            else {}
        )
        kinds = {self._dtypes.get(c.name) for c in columns or ()}
        uniform = kinds.pop() if len(kinds) == 1 else None
        self._uniform = uniform if uniform and all(c.required for c in columns or ()) else None

    @classmethod
    def from_signature(cls, model_name: str, signature: Mapping[str, Any] | None) -> InputSchema:
        return cls(model_name, parse_signature(signature))

    # ------------------------------------------------------------------ models
    def _build_row_model(self) -> type[BaseModel]:
        name = _class_name(self.model_name, "Row")
        if not self.columns:
            return create_model(name, __config__=ConfigDict(extra="allow"))
        fields: dict[str, Any] = {}
        for i, col in enumerate(self.columns):
            py_type = COLUMN_TYPES.get(col.type, (Any, None))[0]
            info = Field(alias=col.name, title=col.name, description=f"MLflow type: {col.type}")
            if not col.required:
                py_type = py_type | None
                info = Field(
                    default=None, alias=col.name, title=col.name, description=f"type: {col.type}"
                )
            fields[f"f{i}"] = (py_type, info)
        return create_model(name, __config__=ConfigDict(extra="forbid"), **fields)

    def _value_type(self) -> Any:
        """The JSON type of a positional value: the signature's, when all columns share it."""
        kinds = {COLUMN_TYPES.get(c.type, (Any, None))[0] for c in self.columns or ()}
        return kinds.pop() if len(kinds) == 1 else Any

    def request_model(self) -> Any:
        """The /v1/models/{name}/predict body: ``records``, or ``columns`` with ``data``."""
        column_type: Any = Literal[tuple(self.names)] if self.names else str  # type: ignore[valid-type]
        rows: Any = list[self.row_model]  # type: ignore[name-defined]
        records = create_model(
            _class_name(self.model_name, "PredictRecords"),
            __config__=ConfigDict(extra="forbid", title="Records"),
            records=(rows, Field(min_length=1, description="One object per row.")),
        )
        split = create_model(
            _class_name(self.model_name, "PredictSplit"),
            __config__=ConfigDict(extra="forbid", title="Columns and rows"),
            columns=(
                list[column_type],
                Field(min_length=1, description="Column names, any order."),
            ),
            data=(
                list[list[self._value_type()]],
                Field(min_length=1, description="Rows of values in `columns` order."),
            ),
        )
        return records | split

    def invocations_model(self) -> Any:
        """MLflow's /invocations body: exactly one of its four scoring formats (+ params)."""
        name = self.model_name
        rows: Any = list[self.row_model]  # type: ignore[name-defined]
        positional: Any = list[list[self._value_type()]]
        split: Any = create_model(
            _class_name(name, "DataframeSplit"),
            columns=(list[str], ...),
            data=(positional, ...),
            index=(list[Any] | None, None),
        )
        params: Any = (dict[str, Any] | None, None)
        formats = [
            ("DataframeSplitBody", "dataframe_split", split),
            ("DataframeRecordsBody", "dataframe_records", rows),
            ("InstancesBody", "instances", rows | positional),
            ("InputsBody", "inputs", dict[str, list[Any]] | rows | positional),
        ]
        bodies = [
            create_model(
                _class_name(name, suffix),
                __config__=ConfigDict(extra="forbid", title=key),
                **{key: (kind, ...)},  # type: ignore[arg-type]
                params=params,
            )
            for suffix, key, kind in formats
        ]
        return bodies[0] | bodies[1] | bodies[2] | bodies[3]

    # ------------------------------------------------------------------ parsing
    def frame_from_predict_body(self, payload: Any) -> pd.DataFrame:
        """The opsloop body: ``{"records": [...]}`` or ``{"columns": [...], "data": [...]}``."""
        if not isinstance(payload, dict):
            raise InputError(
                [
                    _error(
                        (),
                        "body must be a JSON object with 'records', or 'columns' and 'data'",
                        "body_type",
                    )
                ]
            )
        unknown = sorted(set(payload) - {"records", "columns", "data"})
        if unknown:
            raise InputError(
                [
                    _error(
                        (k,),
                        "unknown key; send 'records', or 'columns' and 'data'",
                        "extra_forbidden",
                        k,
                    )
                    for k in unknown
                ]
            )
        if "records" in payload:
            if "columns" in payload or "data" in payload:
                raise InputError(
                    [
                        _error(
                            (),
                            "send either 'records' or 'columns' and 'data', not both",
                            "body_shape",
                        )
                    ]
                )
            return self.frame_from_records(payload["records"], ("records",))
        if "columns" in payload and "data" in payload:
            return self.frame_from_split(payload["columns"], payload["data"], ())
        missing = "data" if "columns" in payload else "columns" if "data" in payload else "records"
        raise InputError([_error((missing,), "field required", "missing", missing)])

    def frame_from_mlflow(self, payload: Any) -> pd.DataFrame:
        """MLflow's scoring protocol: dataframe_split, dataframe_records, instances, inputs."""
        keys = sorted(set(payload) & set(MLFLOW_FORMATS)) if isinstance(payload, dict) else []
        if len(keys) != 1:
            got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
            raise InputError(
                [
                    _error(
                        (),
                        "the input must be a JSON object with exactly one of the input "
                        f"fields {list(MLFLOW_FORMATS)}; got {got}",
                        "body_shape",
                    )
                ]
            )
        key = keys[0]
        value = payload[key]
        if key == "dataframe_split":
            if not isinstance(value, dict) or "columns" not in value or "data" not in value:
                raise InputError(
                    [_error((key,), "must be an object with 'columns' and 'data'", "body_shape")]
                )
            return self.frame_from_split(value["columns"], value["data"], (key,))
        if key == "dataframe_records":
            return self.frame_from_records(value, (key,))
        return self._frame_from_tf_serving(value, key)

    def _frame_from_tf_serving(self, value: Any, key: str) -> pd.DataFrame:
        if isinstance(value, dict):  # columnar: {"col": [v, ...]} or one row {"col": v}
            if value and all(isinstance(v, list) for v in value.values()):
                lengths = {len(v) for v in value.values()}
                if len(lengths) != 1:
                    raise InputError(
                        [
                            _error(
                                (key,),
                                "every column must hold the same number of values",
                                "column_lengths",
                            )
                        ]
                    )
                columns = list(value)
                return self.frame_from_split(
                    columns, [list(r) for r in zip(*value.values(), strict=True)], (key,)
                )
            return self.frame_from_records([value], (key,))
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return self.frame_from_records(value, (key,))
        if isinstance(value, list) and value and self.names:
            if all(isinstance(v, list) for v in value):
                return self.frame_from_split(list(self.names), value, (key,))
            if len(self.names) == 1:
                return self.frame_from_split(list(self.names), [[v] for v in value], (key,))
        raise InputError(
            [
                _error(
                    (key,),
                    "must be a non-empty list of rows (objects, or lists in signature "
                    "order) or an object of columns",
                    "body_shape",
                )
            ]
        )

    def frame_from_frame(self, frame: pd.DataFrame, loc: Loc = ()) -> pd.DataFrame:
        """A frame parsed from CSV or Parquet, validated like JSON records."""
        if frame.empty:
            raise InputError([_error(loc, "no rows", "too_short")])
        return self.frame_from_records(frame.to_dict(orient="records"), loc)

    def frame_from_split(self, columns: Any, data: Any, loc: Loc) -> pd.DataFrame:
        """Column names plus rows of values in that order."""
        if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
            raise InputError(
                [
                    _error(
                        (*loc, "columns"), "must be a list of column names", "list_type", "columns"
                    )
                ]
            )
        if not isinstance(data, list) or not data:
            raise InputError(
                [_error((*loc, "data"), "must be a non-empty list of rows", "too_short", "data")]
            )
        errors: list[dict[str, Any]] = []
        dupes = sorted({c for c in columns if columns.count(c) > 1})
        errors += [_error((*loc, "columns", c), "duplicate column", "duplicate", c) for c in dupes]
        if self.names is not None:
            given = set(columns)
            errors += [
                _error((*loc, "columns", c.name), "column required", "missing", c.name)
                for c in self.columns or ()
                if c.required and c.name not in given
            ]
            known = set(self.names)
            errors += [
                _error(
                    (*loc, "columns", c),
                    "unknown column (not in the model signature)",
                    "extra_forbidden",
                    c,
                )
                for c in columns
                if c not in known
            ]
        for i, row in enumerate(data):
            if not isinstance(row, list):
                errors.append(_error((*loc, "data", i), "row must be a list", "list_type"))
            elif len(row) != len(columns):
                errors.append(
                    _error(
                        (*loc, "data", i),
                        f"row has {len(row)} values for {len(columns)} columns",
                        "row_length",
                    )
                )
        if errors:
            raise InputError(errors)
        return self._validate(
            [dict(zip(columns, row, strict=True)) for row in data], (*loc, "data")
        )

    def frame_from_records(self, rows: Any, loc: Loc) -> pd.DataFrame:
        """A list of ``{column: value}`` objects."""
        if not isinstance(rows, list) or not rows:
            raise InputError([_error(loc, "must be a non-empty list of objects", "too_short")])
        return self._validate(rows, loc)

    def _validate(self, rows: list[Any], loc: Loc) -> pd.DataFrame:
        import pandas as pd

        if self._rows_adapter is None or self.names is None:
            bad = [i for i, r in enumerate(rows) if not isinstance(r, dict)]
            if bad:
                raise InputError(
                    [
                        _error((*loc, i), "row must be an object", "dict_type")
                        for i in bad[:MAX_REPORTED_ERRORS]
                    ],
                    total=len(bad),
                )
            try:
                return pd.DataFrame.from_records(rows)
            except Exception as exc:  # noqa: BLE001 - whatever pandas refuses is bad input
                raise InputError(
                    [_error(loc, f"rows do not form a table: {exc}", "table")]
                ) from None
        self._check_widths(rows, loc)
        adapter = self._rows_adapter
        if len(rows) <= VALIDATE_CHUNK:
            try:
                models = adapter.validate_python(rows)
            except ValidationError as exc:
                raise InputError(_field_errors(exc, loc), total=exc.error_count()) from None
            return self._to_frame([tuple(m.__dict__.values()) for m in models])
        models = []
        errors: list[dict[str, Any]] = []
        total = 0
        for start in range(0, len(rows), VALIDATE_CHUNK):
            try:
                models += adapter.validate_python(rows[start : start + VALIDATE_CHUNK])
            except ValidationError as exc:
                total += exc.error_count()
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors += _field_errors(exc, loc, offset=start)
                if total >= ERROR_BUDGET:
                    done = start + VALIDATE_CHUNK >= len(rows)
                    raise InputError(errors, total=total, complete=done) from None
        if errors:
            raise InputError(errors, total=total)
        return self._to_frame([tuple(m.__dict__.values()) for m in models])

    def _check_widths(self, rows: list[Any], loc: Loc) -> None:
        """Refuse a row with far more fields than the signature before pydantic lists each."""
        widest = len(self.names or ()) + MAX_REPORTED_ERRORS
        for i, row in enumerate(rows):
            if type(row) is dict and len(row) > widest:
                known = set(self.names or ())
                unknown = [k for k in row if k not in known]
                raise InputError(
                    [
                        _error(
                            (*loc, i, k),
                            "unknown field (not in the model signature)",
                            "extra_forbidden",
                            str(k),
                        )
                        for k in unknown[:MAX_REPORTED_ERRORS]
                    ],
                    total=len(unknown),
                    complete=False,
                )

    def _to_frame(self, tuples: list[tuple[Any, ...]]) -> pd.DataFrame:
        """Validated rows as a frame with the signature's dtypes (one block when uniform)."""
        import numpy as np
        import pandas as pd

        names = self.names or []
        if self._uniform is not None:  # e.g. all "double": one 2-D array, no per-column work
            with contextlib.suppress(TypeError, ValueError, OverflowError):
                return pd.DataFrame(np.array(tuples, dtype=self._uniform), columns=names)
        data: dict[str, Any] = {}
        for name, values in zip(names, zip(*tuples, strict=True), strict=True):
            dtype = self._dtypes.get(name)
            data[name] = list(values)
            if dtype is not None and None not in values:
                # on failure keep pandas' own dtype; the model decides whether it can score it
                with contextlib.suppress(OverflowError, TypeError, ValueError):
                    data[name] = np.asarray(values, dtype=dtype)
        return pd.DataFrame(data, columns=names)


def _field_errors(exc: ValidationError, loc: Loc, offset: int = 0) -> list[dict[str, Any]]:
    """Our errors from pydantic's; ``offset`` is the index of the chunk's first row."""
    out = []
    for err in exc.errors(include_url=False, include_input=False)[:MAX_REPORTED_ERRORS]:
        where = err["loc"]
        if offset and where and isinstance(where[0], int):
            where = (where[0] + offset, *where[1:])
        field = str(where[1]) if len(where) > 1 else None
        msg = {
            "missing": "field required",
            "extra_forbidden": "unknown field (not in the model signature)",
            "model_type": "row must be an object",
        }.get(err["type"], err["msg"])
        out.append(_error((*loc, *where), msg, err["type"], field))
    return out


class FastReader:
    """Rows of an all-``double`` signature straight to a float64 array, in the model's order.

    Accepts exactly what the pydantic path accepts (JSON numbers, no booleans, strings, NaN
    or infinities; every column present, none unknown) and returns None for anything else,
    so the pydantic path can name each problem. ``order`` is the column order the model
    was fitted with; ``names`` the signature's.
    """

    def __init__(self, names: Sequence[str], order: Sequence[str]) -> None:
        self.names = tuple(names)
        self.order = tuple(order)
        self.width = len(self.order)
        self._known = frozenset(self.order)

    def records(self, rows: Any) -> Any:
        """``[{column: number}, ...]`` -> array, or None."""
        if type(rows) is not list or not rows:
            return None
        width = self.width
        order = self.order
        out = []
        try:
            for rec in rows:
                if type(rec) is not dict or len(rec) != width:
                    return None
                values = [rec[name] for name in order]
                for v in values:
                    t = type(v)
                    if t is not float and t is not int:
                        return None
                out.append(values)
        except KeyError:
            return None
        return self._array(out)

    def split(self, columns: Any, data: Any) -> Any:
        """Column names plus rows of numbers -> array in the model's order, or None."""
        if (
            type(columns) is not list
            or len(columns) != self.width
            or type(data) is not list
            or not data
            or not all(type(c) is str for c in columns)
            or set(columns) != self._known
            or len(set(columns)) != self.width
        ):
            return None
        width = self.width
        for row in data:
            if type(row) is not list or len(row) != width:
                return None
            for v in row:
                t = type(v)
                if t is not float and t is not int:
                    return None
        array = self._array(data)
        if array is None:
            return None
        if list(columns) == list(self.order):
            return array
        index = {name: i for i, name in enumerate(columns)}
        return array[:, [index[name] for name in self.order]]

    def signature_rows(self, data: Any) -> Any:
        """Rows of numbers in signature order (MLflow ``instances``/``inputs`` lists)."""
        return self.split(list(self.names), data)

    @staticmethod
    def _array(rows: list[Any]) -> Any:
        import numpy as np

        try:
            array = np.array(rows, dtype=np.float64)
        except (OverflowError, ValueError, TypeError):
            return None
        if array.ndim != 2 or not np.isfinite(array).all():
            return None
        return array
