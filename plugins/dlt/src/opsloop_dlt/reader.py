"""Read a loaded table back from the DuckDB warehouse, with its load ids as lineage.

Only rows of load packages that completed (``_dlt_loads.status = 0``) are read, so a load
that failed half-way is never visible. dlt's own columns (``_dlt_*``) are dropped.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any

from opsloop.errors import OpsloopError

if TYPE_CHECKING:
    import pandas as pd

    from opsloop.interfaces import Dataset
    from opsloop.project import Project

DLT_PREFIX = "_dlt_"


def read_dataset(project: Project, table: str, dataset: str) -> Dataset:
    """The table ``dataset.table`` as a Dataset (frame, load ids, content hash)."""
    import duckdb

    from opsloop.interfaces import Dataset

    path = project.warehouse_path
    if not path.exists():
        raise OpsloopError(
            f"nothing was loaded yet (no warehouse at {path}); run `opsloop ingest run` first"
        )
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        first = " ".join(str(exc).split())[:200]
        raise OpsloopError(f"cannot open the warehouse {path} read-only: {first}") from None
    try:
        schema, name = _resolve(con, table, dataset)
        columns = [
            r[0]
            for r in con.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [schema, name],
            ).fetchall()
        ]
        keep = [c for c in columns if not c.startswith(DLT_PREFIX)]
        if "_dlt_load_id" not in columns:
            raise OpsloopError(
                f"table '{schema}.{name}' was not loaded by dlt (no _dlt_load_id column), so it "
                "has no lineage; read it with DuckDB directly"
            )
        selected = ", ".join(_quote(c) for c in keep)
        frame = con.execute(
            f"SELECT {selected}, _dlt_load_id FROM {_quote(schema)}.{_quote(name)} "
            f"WHERE _dlt_load_id IN (SELECT load_id FROM {_quote(schema)}._dlt_loads "
            "WHERE status = 0) ORDER BY rowid"
        ).df()
    finally:
        con.close()
    load_ids = sorted({str(v) for v in frame["_dlt_load_id"].unique()})
    frame = frame.drop(columns=["_dlt_load_id"]).reset_index(drop=True)
    return Dataset(name=name, frame=frame, load_ids=load_ids, content_hash=content_hash(frame))


def content_hash(frame: pd.DataFrame) -> str:
    """SHA-256 of a frame's content, independent of column and row order.

    Columns are sorted by name; each row is hashed with pandas' stable row hash, the row
    hashes are sorted, and the digest covers the column names, dtypes and row hashes.
    """
    import pandas as pd

    ordered = frame[sorted(frame.columns)]
    header = json.dumps([[str(c), str(ordered[c].dtype)] for c in ordered.columns])
    digest = hashlib.sha256(header.encode())
    digest.update(len(ordered).to_bytes(8, "little"))
    if len(ordered):
        rows = pd.util.hash_pandas_object(ordered, index=False).to_numpy().copy()
        rows.sort()
        digest.update(rows.tobytes())
    return digest.hexdigest()


def _resolve(con: Any, table: str, dataset: str) -> tuple[str, str]:
    """The (schema, table) that exists for these names, as given or as dlt names them."""
    from opsloop_dlt.naming import normalize

    existing = {
        (r[0], r[1])
        for r in con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
        ).fetchall()
    }
    schemas = {s for s, _ in existing}
    schema = dataset if dataset in schemas else normalize(dataset)
    if schema not in schemas:
        datasets = sorted(s for s, t in existing if t == "_dlt_loads")
        raise OpsloopError(
            f"no dataset '{dataset}' in the warehouse; datasets: "
            f"{', '.join(datasets) or 'none (run `opsloop ingest run` first)'}"
        )
    for candidate in (table, normalize(table)):
        if (schema, candidate) in existing:
            return schema, candidate
    tables = sorted(t for s, t in existing if s == schema and not t.startswith(DLT_PREFIX))
    raise OpsloopError(
        f"no table '{table}' in dataset '{schema}'; tables: {', '.join(tables) or 'none'}"
    )


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
