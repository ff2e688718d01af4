from __future__ import annotations

import json
from pathlib import Path

from opsloop.audit import AuditLog


def make_log(tmp_path: Path, n: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", actor="alice")
    for i in range(n):
        log.append("thing.change", f"t{i}", before={"v": i}, after={"v": i + 1})
    return log


def lines(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def test_chain_verifies(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    result = log.verify()
    assert result.ok and result.entries == 4
    entries = list(log.entries())
    assert [e["seq"] for e in entries] == [1, 2, 3, 4]
    assert all(entries[i]["prev"] == entries[i - 1]["hash"] for i in range(1, 4))
    assert entries[0]["actor"] == "alice" and entries[0]["action"] == "thing.change"


def test_edited_entry_is_named(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    rows = lines(log)
    entry = json.loads(rows[2])
    entry["after"] = {"v": 999}
    rows[2] = json.dumps(entry, sort_keys=True)
    log.path.write_text("\n".join(rows) + "\n")
    result = log.verify()
    assert not result.ok and result.bad_seq == 3 and "edited" in result.reason


def test_removed_entry_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    rows = lines(log)
    del rows[1]
    log.path.write_text("\n".join(rows) + "\n")
    result = log.verify()
    assert not result.ok and result.bad_seq == 2


def test_reordered_entries_are_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    rows = lines(log)
    rows[1], rows[2] = rows[2], rows[1]
    log.path.write_text("\n".join(rows) + "\n")
    result = log.verify()
    assert not result.ok and result.bad_seq == 2


def test_truncated_tail_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    rows = lines(log)
    log.path.write_text("\n".join(rows[:-1]) + "\n")
    result = log.verify()
    assert not result.ok and "removed from the end" in result.reason


def test_garbage_line_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    with log.path.open("a") as fh:
        fh.write("not json\n")
    result = log.verify()
    assert not result.ok and result.bad_seq == 5


def test_secrets_never_land_in_the_log(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", actor="bob")
    log.append(
        "settings.change",
        "plugin.mlflow",
        before={"tracking_uri": "postgresql://u:hunter2@db/mlflow"},
        after={"api_token": "s3cr3t-value", "note": "key ghp_abcdefghijklmnopqrstuvwxyz0123456789"},
    )
    text = log.path.read_text()
    assert "hunter2" not in text and "s3cr3t-value" not in text and "ghp_abc" not in text
    assert log.verify().ok


def test_append_survives_concurrent_writers(tmp_path: Path) -> None:
    import threading

    log = AuditLog(tmp_path / "audit.jsonl", actor="x")

    def work() -> None:
        for i in range(20):
            AuditLog(log.path, actor="x").append("a", str(i))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = log.verify()
    assert result.ok and result.entries == 80
