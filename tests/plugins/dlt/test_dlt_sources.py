"""More sources: Parquet and JSON Lines files, a paging REST API, MariaDB, a backfill range."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlparse

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from opsloop import ingest
from opsloop.errors import OpsloopError
from opsloop.project import Project
from opsloop.records import LoadRecord

CONTRACT = """
[plugin.dlt.contracts.c]
[plugin.dlt.contracts.c.columns]
id = { type = "bigint", nullable = false }
amount = { type = "double", min = 0 }
"""


def query(project: Project, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(project.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def load(project: Project, name: str) -> LoadRecord:
    return ingest.run_load(project, ingest.get_source(project, name))


def test_parquet_files_load_in_batches_and_quarantine_names_the_row(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    pq.write_table(pa.table({"id": [1, 2, 3], "amount": [1.0, -2.0, 3.0]}), landing / "a.parquet")
    pq.write_table(pa.table({"id": [4, 5], "amount": [4.0, 5.0]}), landing / "b.parquet")
    project = make_project(
        "[plugin.dlt]\ncsv_chunk_rows = 2\nsources = [{name = 'p', path = '"
        + str(landing)
        + "', glob = '*.parquet', contract = 'c'}]\n"
        + CONTRACT
    )
    record = load(project, "p")
    assert record.tables == {"p": 4, "p_quarantine": 1}
    assert query(project, "SELECT source, line, rules FROM raw.p_quarantine") == [
        (str(landing / "a.parquet"), 2, "amount.min")
    ]
    assert load(project, "p").status == "empty"
    # lineage columns are there for Arrow batches too
    assert query(project, "SELECT count(DISTINCT _dlt_load_id) FROM raw.p") == [(1,)]


def test_jsonl_files_load_and_a_bad_line_is_named_with_earlier_data_intact(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a.jsonl").write_text('{"id": 1, "amount": 1.5}\n{"id": 2, "amount": 2.5}\n')
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'j', path = '" + str(landing) + "', glob = '*.jsonl'}]\n"
    )
    assert load(project, "j").rows == 2
    (landing / "b.jsonl").write_text('{"id": 3, "amount": 3.5}\n{"id": 4,\n{"id": 5}\n')
    with pytest.raises(OpsloopError) as err:
        load(project, "j")
    assert f"{landing / 'b.jsonl'} line 2" in str(err.value) and "not valid JSON" in str(err.value)
    assert query(project, "SELECT count(*) FROM raw.j") == [(2,)]


# ------------------------------------------------------------------ REST
RECORDS = [
    {"id": i, "amount": float(i), "updated_at": f"2026-11-{i:02d}T00:00:00Z"} for i in range(1, 8)
]


class Api(BaseHTTPRequestHandler):
    """Pages of 3 orders with ``updated_at >= since``; a ``next`` link; bearer auth."""

    records: ClassVar[list[dict[str, Any]]] = []
    seen: ClassVar[list[tuple[str, str]]] = []

    def do_GET(self) -> None:
        url = urlparse(self.path)
        args = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.seen.append((self.path, self.headers.get("Authorization", "")))
        if self.headers.get("Authorization") != "Bearer s3cret-token":
            self.send_response(401)
            self.end_headers()
            return
        since = args.get("since", "")
        page = int(args.get("page", "1"))
        rows = [r for r in self.records if r["updated_at"] >= since]
        chunk = rows[(page - 1) * 3 : page * 3]
        host = f"http://127.0.0.1:{self.server.server_address[1]}"
        nxt = f"{host}/orders?since={since}&page={page + 1}" if page * 3 < len(rows) else None
        body = json.dumps({"items": chunk, "next": nxt}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[tuple[str, type[Api]]]:
    handler = type("Handler", (Api,), {"records": list(RECORDS[:5]), "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_rest_api_pages_resumes_from_its_cursor_and_keeps_the_token_secret(
    make_project: Callable[..., Project],
    api: tuple[str, type[Api]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    base, handler = api
    monkeypatch.setenv("SHOP_API_TOKEN", "s3cret-token")
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'api_orders', kind = 'rest_api', base_url = '"
        + base
        + "', incremental = 'updated_at', primary_key = ['id'], write_disposition = 'merge', "
        "auth_token_env = 'SHOP_API_TOKEN', start = '2026-11-01T00:00:00Z', "
        "paginator = { type = 'json_link', next_url_path = 'next' }, "
        "resource = { endpoint = { path = 'orders', data_selector = 'items', "
        "params = { since = '{incremental.start_value}' } } } }]\n"
    )
    first = load(project, "api_orders")
    assert first.tables["api_orders"] == 5
    assert len([p for p, _ in handler.seen if "page=2" in p]) == 1  # it followed the link
    handler.records = list(RECORDS)  # two new orders, and order 5 is re-sent at the cursor
    handler.seen.clear()
    second = load(project, "api_orders")
    assert second.status == "loaded"
    assert all("since=2026-11-05" in p for p, _ in handler.seen)  # asked only from the cursor
    assert sorted(r[0] for r in query(project, "SELECT id FROM raw.api_orders")) == list(
        range(1, 8)
    )
    stored = json.dumps([r.to_dict() for r in project.records.list(LoadRecord)])
    assert "s3cret-token" not in stored
    assert "s3cret-token" not in project.audit.path.read_text()


def test_rest_api_without_its_token_is_one_line(
    make_project: Callable[..., Project], api: tuple[str, type[Api]]
) -> None:
    base, _ = api
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'a', kind = 'rest_api', base_url = '"
        + base
        + "', auth_token_env = 'NO_SUCH_TOKEN_VAR', resource = { endpoint = 'orders' } }]\n"
    )
    with pytest.raises(OpsloopError, match="NO_SUCH_TOKEN_VAR"):
        load(project, "a")


# ------------------------------------------------------------------ MariaDB, backfill
MARIADB = "mysql+pymysql://root@127.0.0.1:3306"


@pytest.fixture
def mariadb() -> Iterator[str]:
    db = f"opsloop_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(MARIADB)
    with engine.begin() as con:
        con.execute(sa.text(f"CREATE DATABASE {db}"))
        con.execute(
            sa.text(
                f"CREATE TABLE {db}.orders (id INT PRIMARY KEY, amount DOUBLE, "
                "updated_at DATETIME NOT NULL)"
            )
        )
        con.execute(
            sa.text(
                f"INSERT INTO {db}.orders VALUES (1, 1.5, '2026-11-01 00:00:00'), "
                "(2, -2.0, '2026-11-02 00:00:00'), (3, 3.0, '2026-11-03 00:00:00'), "
                "(4, 4.0, '2026-11-04 00:00:00')"
            )
        )
    yield f"{MARIADB}/{db}"
    with engine.begin() as con:
        con.execute(sa.text(f"DROP DATABASE {db}"))
    engine.dispose()


def test_mariadb_table_through_the_arrow_backend_with_a_contract(
    make_project: Callable[..., Project], mariadb: str
) -> None:
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'm', kind = 'sql', table = 'orders', credentials = '"
        + mariadb
        + "', backend = 'pyarrow', contract = 'c'}]\n"
        + CONTRACT
    )
    record = load(project, "m")
    assert record.tables == {"m": 3, "m_quarantine": 1}
    assert sorted(r[0] for r in query(project, "SELECT id FROM raw.m")) == [1, 3, 4]
    assert query(project, "SELECT rules FROM raw.m_quarantine") == [("amount.min",)]


def test_backfill_loads_only_the_date_range(
    make_project: Callable[..., Project], mariadb: str
) -> None:
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'b', kind = 'sql', table = 'orders', credentials = '"
        + mariadb
        + "', incremental = 'updated_at', start = '2026-11-02', end = '2026-11-04'}]\n"
    )
    load(project, "b")
    assert sorted(r[0] for r in query(project, "SELECT id FROM raw.b")) == [2, 3]


def test_a_parquet_load_with_a_contract_does_not_import_pandas(tmp_path: Path) -> None:
    """pandas costs about 0.3 s to import, a tenth of a million-row load: the Arrow path
    (reading, the contract check, quarantine rows, the load id column) must not need it."""
    import subprocess
    import sys

    landing = tmp_path / "landing"
    landing.mkdir()
    ts = pa.array([1_700_000_000_000_000, 1_700_000_001_000_000], pa.timestamp("us", tz="UTC"))
    pq.write_table(pa.table({"id": [1, 2], "amount": [1.0, -2.0], "at": ts}), landing / "a.parquet")
    root = tmp_path / "project"
    root.mkdir()
    (root / "opsloop.toml").write_text(
        "[plugin.dlt]\nsources = [{name = 'p', path = '"
        + str(landing)
        + "', glob = '*.parquet', contract = 'c'}]\n"
        + CONTRACT
        + 'at = "timestamp"\n'
    )
    script = (
        "import sys, json\n"
        "import opsloop_dlt.plugin\n"
        "from opsloop import ingest\n"
        "from opsloop.plugins import PluginManager\n"
        "from opsloop.project import Project\n"
        "manager = PluginManager(load_entrypoints=False, environ={}).load()\n"
        "manager.register(opsloop_dlt.plugin, name='dlt')\n"
        f"project = Project.open({str(root)!r}, plugins=manager, environ={{}})\n"
        "record = ingest.run_load(project, ingest.get_source(project, 'p'))\n"
        "print(json.dumps([record.tables, 'pandas' in sys.modules]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    tables, pandas_imported = json.loads(out.stdout.strip().splitlines()[-1])
    assert tables == {"p": 1, "p_quarantine": 1}
    assert pandas_imported is False
