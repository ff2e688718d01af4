"""Data contracts during a load: quarantine, signals, drift modes, release after a fix."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pytest
from dlt_plugin_testdata import write_csv
from opsloop_dlt.quarantine import pending, release

from opsloop import ingest
from opsloop.errors import OpsloopError
from opsloop.project import Project
from opsloop.records import Alert, LoadRecord, Signal

CONTRACT = """
[plugin.dlt.contracts.orders-v1]
schema_changes = "{mode}"
unique = ["id"]
rules = {{ big_orders_have_a_customer = "amount < 1000 OR customer IS NOT NULL" }}
[plugin.dlt.contracts.orders-v1.columns]
id = {{ type = "bigint", nullable = false }}
amount = {{ type = "double", min = 0 }}
status = {{ type = "text", allowed = ["new", "paid"] }}
customer = "text"
"""


def config(landing: Path, mode: str = "evolve", extra: str = "") -> str:
    return (
        "[plugin.dlt]\nsources = [{name = 'orders', path = '" + str(landing) + "', "
        "contract = 'orders-v1'" + extra + "}]\n" + CONTRACT.format(mode=mode)
    )


def query(project: Project, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(project.warehouse_path), read_only=True) as con:
        return con.execute(sql).fetchall()


def run(project: Project) -> LoadRecord:
    return ingest.run_load(project, ingest.get_source(project, "orders"))


HEADER = ["id", "amount", "status", "customer"]


def test_rows_breaking_the_contract_are_quarantined_signalled_and_alerted(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(
        landing / "d1.csv",
        HEADER,
        [
            [1, 10.0, "new", "a"],
            [2, -5.0, "new", "b"],  # amount.min
            [3, 20.0, "lost", "c"],  # status.allowed
            [3, 30.0, "paid", "d"],  # unique (3 again)
            [4, "abc", "paid", "e"],  # amount.type
            [5, 5000.0, "paid", ""],  # the SQL rule (no customer)
            ["", 1.0, "new", "f"],  # id.not_null
            [6, 7.5, "paid", "g"],
        ],
    )
    project = make_project(config(landing))
    record = run(project)
    assert record.tables == {"orders": 2, "orders_quarantine": 6}
    assert sorted(query(project, "SELECT id, amount FROM raw.orders")) == [(1, 10.0), (6, 7.5)]
    types = dict(
        query(
            project,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'raw' AND table_name = 'orders'",
        )
    )
    assert types["amount"] == "DOUBLE" and not any("__v_" in c for c in types)

    rows = pending(project, ingest.get_source(project, "orders"))
    by_line = {r.line: r for r in rows}
    assert {line: r.rules for line, r in by_line.items()} == {
        3: "amount.min",
        4: "status.allowed",
        5: "unique",
        6: "amount.type",
        7: "big_orders_have_a_customer",
        8: "id.not_null",
    }
    assert by_line[6].row["amount"] == "abc" and by_line[6].source.endswith("d1.csv")
    assert {r.load_id for r in rows} == set(record.load_ids)

    (signal,) = [s for s in project.records.list(Signal) if s.type == "contract_violation"]
    assert signal.subject == "raw.orders" and signal.value == 6
    assert signal.data["rules"]["amount.min"] == 1 and signal.data["load_ids"] == record.load_ids
    assert "orders-v1" in signal.summary
    assert any(a.rule == "contract-violation" for a in project.records.list(Alert))
    assert any(e["action"] == "ingest.quarantine" for e in project.audit.entries())


def test_release_rechecks_against_the_fixed_contract_and_loads_once(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(
        landing / "d1.csv",
        HEADER,
        [[1, 10.0, "new", "a"], [2, 20.0, "refunded", "b"], [3, -1.0, "new", "c"]],
    )
    project = make_project(config(landing))
    run(project)
    source = ingest.get_source(project, "orders")
    # nothing changed: both rows still fail and stay
    first = release(project, source)
    assert (first.released, first.still_failing) == (0, 2)
    assert len(pending(project, source)) == 2

    # the contract now allows 'refunded'
    root = project.root
    text = (root / "opsloop.toml").read_text().replace('"paid"]', '"paid", "refunded"]')
    (root / "opsloop.toml").write_text(text)
    project = make_project(text, root=root)
    source = ingest.get_source(project, "orders")
    second = release(project, source)
    assert (second.released, second.still_failing) == (1, 1)
    assert sorted(query(project, "SELECT id, status FROM raw.orders")) == [
        (1, "new"),
        (2, "refunded"),
    ]
    (left,) = pending(project, source)
    assert left.rules == "amount.min"
    assert release(project, source, [left.qid]).released == 0
    assert any(e["action"] == "ingest.quarantine.release" for e in project.audit.entries())
    assert sorted(query(project, "SELECT id FROM raw.orders")) == [(1,), (2,)]


@pytest.mark.parametrize(
    ("mode", "expect"),
    [
        ("freeze", "error"),
        ("discard_value", "dropped"),
        ("discard_row", "quarantined"),
        ("evolve", "added"),
    ],
)
def test_a_new_column_follows_the_schema_changes_mode(
    make_project: Callable[..., Project], tmp_path: Path, mode: str, expect: str
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", HEADER, [[1, 1.0, "new", "a"]])
    project = make_project(config(landing, mode))
    run(project)
    write_csv(landing / "d2.csv", [*HEADER, "coupon"], [[2, 2.0, "new", "b", "X1"]])
    if expect == "error":
        with pytest.raises(OpsloopError, match=r"coupon.*freeze") as err:
            run(project)
        assert "d2.csv" in str(err.value)
        assert query(project, "SELECT count(*) FROM raw.orders") == [(1,)]
        return
    run(project)
    columns = {r[0] for r in query(project, "DESCRIBE raw.orders")}
    assert ("coupon" in columns) == (expect == "added")
    ids = sorted(r[0] for r in query(project, "SELECT id FROM raw.orders"))
    assert ids == ([1] if expect == "quarantined" else [1, 2])
    drift = [s for s in project.records.list(Signal) if s.type == "schema_drift"]
    assert drift and drift[-1].data["new_columns"] == ["coupon"] and drift[-1].data["mode"] == mode


def test_without_a_contract_a_text_value_in_a_numeric_column_fails_with_file_and_line(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id", "value"], [[1, 0.5], [2, 1.5]])
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'm', path = '" + str(landing) + "'}]\n"
    )
    ingest.run_load(project, ingest.get_source(project, "m"))
    write_csv(landing / "d2.csv", ["id", "value"], [[3, 2.5], [4, "oops"]])
    with pytest.raises(OpsloopError) as err:
        ingest.run_load(project, ingest.get_source(project, "m"))
    message = str(err.value)
    assert "d2.csv line 3" in message and "value.type" in message and "\n" not in message
    columns = {r[0] for r in query(project, "DESCRIBE raw.m")}
    assert not any("__v_" in c for c in columns)
    assert query(project, "SELECT count(*) FROM raw.m") == [(2,)]


def test_without_a_contract_a_file_with_other_columns_is_refused(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id", "value"], [[1, 0.5]])
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'm', path = '" + str(landing) + "'}]\n"
    )
    ingest.run_load(project, ingest.get_source(project, "m"))
    write_csv(landing / "d2.csv", ["sku", "price"], [["A", 3]])
    with pytest.raises(OpsloopError, match=r"d2\.csv shares no column with the table"):
        ingest.run_load(project, ingest.get_source(project, "m"))
    assert query(project, "SELECT count(*) FROM raw.m") == [(1,)]


def test_contract_in_a_file_beside_the_config_and_freshness(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", ["id", "ts"], [[1, "2020-01-01T00:00:00Z"]])
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "events.json").write_text(
        json.dumps({"columns": {"id": "bigint", "ts": "timestamp"}, "freshness": {"ts": "2d"}})
    )
    project = make_project(
        "[plugin.dlt]\nsources = [{name = 'ev', path = '" + str(landing) + "', "
        "contract = 'events'}]\n",
        root=root,
    )
    contract = ingest.get_contract(project, "events")
    assert contract.freshness == {"ts": 172800.0} and contract.columns["ts"] == "timestamp"
    ingest.run_load(project, ingest.get_source(project, "ev"))
    (stale,) = [s for s in project.records.list(Signal) if s.type == "contract_violation"]
    assert "ts.freshness" in stale.data["rules"] and stale.threshold == 172800.0


def test_bad_contract_file_is_one_line(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    root = tmp_path / "proj"
    (root / "contracts").mkdir(parents=True)
    (root / "contracts" / "bad.toml").write_text(
        'columns = { a = "double" }\nfreshness = { b = "1d" }\n'
    )
    project = make_project("[plugin.dlt]\n", root=root)
    with pytest.raises(OpsloopError, match=r"bad\.toml.*freshness names column 'b'"):
        ingest.list_contracts(project)


def test_unique_key_is_checked_against_earlier_loads(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", HEADER, [[5, 1.0, "new", "a"], [10, 1.0, "new", "b"]])
    project = make_project(config(landing))
    run(project)
    # inside the range loaded before (no fast path): 10 is a repeat, 7 and 1 are new
    write_csv(
        landing / "d2.csv",
        HEADER,
        [[7, 1.0, "new", "c"], [10, 2.0, "new", "d"], [1, 1.0, "new", "e"]],
    )
    record = run(project)
    assert record.tables == {"orders": 2, "orders_quarantine": 1}
    (row,) = pending(project, ingest.get_source(project, "orders"))
    assert row.rules == "unique" and row.row["id"] == 10
    assert sorted(r[0] for r in query(project, "SELECT id FROM raw.orders")) == [1, 5, 7, 10]


@pytest.mark.parametrize("pending_max", [500_000, 3])
def test_a_key_repeated_in_a_later_batch_of_the_same_load_is_quarantined(
    make_project: Callable[..., Project],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pending_max: int,
) -> None:
    # keys wait as Arrow until a lookup needs them, or go to DuckDB every few batches
    monkeypatch.setattr("opsloop_dlt.contracts.PENDING_KEYS_MAX", pending_max)
    landing = tmp_path / "landing"
    # batches of two rows: [1, 2] [2, 3] [9, 4] [5, 1]: each batch's keys are distinct, but
    # 2 and 1 were loaded by an earlier batch of this very load
    write_csv(
        landing / "d1.csv",
        HEADER,
        [[i, 1.0, "new", "x"] for i in (1, 2, 2, 3, 9, 4, 5, 1)],
    )
    project = make_project(
        config(landing).replace("[plugin.dlt]\n", "[plugin.dlt]\ncsv_chunk_rows = 2\n")
    )
    record = run(project)
    assert record.tables == {"orders": 6, "orders_quarantine": 2}
    rows = pending(project, ingest.get_source(project, "orders"))
    assert sorted((r.line, r.rules, r.row["id"]) for r in rows) == [
        (4, "unique", 2),
        (9, "unique", 1),
    ]
    assert sorted(r[0] for r in query(project, "SELECT id FROM raw.orders")) == [1, 2, 3, 4, 5, 9]


def test_every_row_of_the_table_quarantine_and_release_marks_carries_its_load_id(
    make_project: Callable[..., Project], tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    write_csv(landing / "d1.csv", HEADER, [[1, 10.0, "new", "a"], [2, 20.0, "refunded", "b"]])
    project = make_project(config(landing))
    (load_id,) = run(project).load_ids
    for table in ("orders", "orders_quarantine"):
        assert query(project, f"SELECT _dlt_load_id, count(*) FROM raw.{table} GROUP BY 1") == [
            (load_id, 1)
        ]
    text = (project.root / "opsloop.toml").read_text().replace('"paid"]', '"paid", "refunded"]')
    (project.root / "opsloop.toml").write_text(text)
    project = make_project(text, root=project.root)
    (released,) = release(project, ingest.get_source(project, "orders")).load_ids
    assert query(project, "SELECT id, _dlt_load_id FROM raw.orders ORDER BY id") == [
        (1, load_id),
        (2, released),
    ]
    assert query(project, "SELECT _dlt_load_id FROM raw.orders_quarantine_released") == [
        (released,)
    ]
    nullable = query(
        project,
        "SELECT DISTINCT is_nullable FROM information_schema.columns "
        "WHERE table_schema = 'raw' AND column_name = '_dlt_load_id'",
    )
    assert nullable == [("NO",)]


def test_column_rules_checked_in_pyarrow_flag_exactly_what_the_duckdb_query_flags(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Not-null, min, max and allowed are evaluated with pyarrow when nothing needs a cast;
    NULL, NaN, -0.0, fractional bounds on integers and case must come out as in SQL."""
    import pyarrow as pa
    from opsloop_dlt.contracts import BatchChecker
    from opsloop_dlt.settings import ContractConfig

    contract = ContractConfig.model_validate(
        {
            "columns": {
                "i": {"type": "bigint", "nullable": False, "min": 0.5, "max": 2.5},
                "f": {"type": "double", "min": 0, "max": 1},
                "s": {"type": "text", "allowed": ["a", "b"]},
                "n": {"type": "bigint", "allowed": [1, 2]},
            },
            "unique": ["i"],
        }
    ).to_contract("c")
    nan = float("nan")
    batch = pa.table(
        {
            "i": pa.array([None, 0, 1, 2, 3, -5, 2**62, 1], pa.int64()),
            "f": pa.array([nan, -0.0, 0.5, 1.0, 1.5, None, -1e-300, nan], pa.float64()),
            "s": pa.array(["a", None, "c", "b", "", "A", "a", "b"], pa.string()),
            "n": pa.array([1, 2, 3, None, 1, 0, 2, 2], pa.int64()),
        }
    )

    def outcome(checker: BatchChecker) -> tuple[str, list[tuple[int, str]]]:
        good, bad = checker.check(batch, "t", 1)
        assert bad is not None
        lines, rules = bad["line"].to_pylist(), bad["rules"].to_pylist()
        return str(good.to_pylist()), list(zip(lines, rules, strict=True))

    fast = BatchChecker("s", contract)
    with_pyarrow = outcome(fast)
    assert all(rule is not None for rule in fast._column_rules.values())
    assert len(fast._column_rules) == 7
    sql = BatchChecker("s", contract)
    monkeypatch.setattr(sql, "_column_flags", lambda *args: None)
    assert outcome(sql) == with_pyarrow
    assert with_pyarrow[1] == [
        (1, "i.not_null, f.max"),  # NaN fails <= (DuckDB orders NaN above every number)
        (2, "i.min"),  # 0 < 0.5; -0.0 >= 0 holds; a NULL passes allowed
        (3, "s.allowed, n.allowed"),
        (5, "i.max, f.max, s.allowed"),
        (6, "i.min, s.allowed, n.allowed"),  # allowed is case-sensitive
        (7, "i.max, f.min"),
        (8, "f.max, unique"),  # NaN again; i = 1 repeats line 3
    ]
