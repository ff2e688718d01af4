"""The keyed audit log against someone who can write the project folder but not read the key:
every tamper is found; a crash mid-append is recovered and leaves no unaudited change; the
records store is checked against the chain; the project home is private."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from opsloop.audit import GENESIS, AuditKeys, AuditLog, user_home
from opsloop.project import Project
from opsloop.records import Incident, Signal
from opsloop.respond import list_incidents
from opsloop.testing import make_project


def make_log(tmp_path: Path, n: int = 4) -> AuditLog:
    log = AuditLog(tmp_path / "audit.jsonl", actor="alice")
    for i in range(n):
        log.append("thing.change", f"t{i}", before={"v": i}, after={"v": i + 1})
    return log


def rows(log: AuditLog) -> list[str]:
    return log.path.read_text().splitlines()


def write_rows(log: AuditLog, lines: list[str]) -> None:
    log.path.write_text("".join(line + "\n" for line in lines))


def legacy_digest(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def write_legacy(path: Path, n: int) -> None:
    """A log as the unkeyed writer (before issue 10) left it: SHA-256 chain, plain head."""
    prev, lines = GENESIS, []
    for seq in range(1, n + 1):
        entry = {"seq": seq, "id": f"aud_{seq}", "time": "2026-01-01T00:00:00+00:00",
                 "actor": "old", "action": "old.change", "target": str(seq), "before": None,
                 "after": {"v": seq}, "detail": {}, "prev": prev}  # fmt: skip
        entry["hash"] = prev = legacy_digest(entry)
        lines.append(json.dumps(entry, sort_keys=True))
    path.write_text("".join(line + "\n" for line in lines))
    path.with_name(path.name + ".head").write_text(json.dumps({"seq": n, "hash": prev}))


# ---------------------------------------------------------------------------------- keying
def test_the_key_lives_outside_the_project_private(tmp_path: Path) -> None:
    log = make_log(tmp_path / "project")
    entries = list(log.entries())
    log_id = entries[0]["log"]
    key_file = user_home() / "keys" / log_id
    assert key_file.is_file() and not key_file.is_relative_to(tmp_path)
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.parent.stat().st_mode) == 0o700
    assert entries[0]["keyed"]["key_id"] and all(e["log"] == log_id for e in entries)
    result = log.verify()
    assert result.ok and result.entries == 4 and result.log_id == log_id
    assert "keyed" in result.describe()


def test_edit_and_rechain_without_the_key_is_found(tmp_path: Path) -> None:
    """The attacker edits entry 2 and recomputes every hash as well as they can: plain
    SHA-256 (the old scheme), and an HMAC with a key of their own."""
    import hmac

    log = make_log(tmp_path)
    lines = rows(log)
    for forge in ("sha256", "own-key"):
        prev, out = GENESIS, []
        for i, line in enumerate(lines):
            entry = json.loads(line)
            if i == 1:
                entry["after"] = {"v": 999}
            entry["prev"] = prev
            body = {k: v for k, v in entry.items() if k != "hash"}
            text = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
            if forge == "sha256":
                entry["hash"] = hashlib.sha256(text).hexdigest()
            else:
                entry["hash"] = hmac.new(b"attacker" * 4, text, "sha256").hexdigest()
            prev = entry["hash"]
            out.append(json.dumps(entry, sort_keys=True))
        write_rows(log, out)
        result = log.verify()
        assert not result.ok and result.bad_seq == 1 and "edited" in result.reason, forge


def test_downgrade_to_an_unkeyed_log_is_found(tmp_path: Path) -> None:
    """Rewrite the whole log in the old unkeyed format with a matching old-style head: the
    checkpoint kept outside the project names the log that was there."""
    log = make_log(tmp_path, 3)
    write_legacy(log.path, 3)
    result = log.verify()
    assert not result.ok and "deleted, replaced or rewritten" in result.reason


def test_truncate_and_delete_head_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    write_rows(log, rows(log)[:2])
    log.head_path.unlink()
    result = log.verify()
    assert not result.ok and "head file audit.jsonl.head is missing" in result.reason
    # ... and with an old head put back (sealed, but stale): the checkpoint outside finds it
    log2 = make_log(tmp_path / "two", 2)
    old_head = log2.head_path.read_bytes()
    log2.append("later", "x")
    log2.append("later", "y")
    write_rows(log2, rows(log2)[:2])
    log2.head_path.write_bytes(old_head)
    result = log2.verify()
    assert not result.ok and "checkpoint kept outside the project" in result.reason
    # the next append seals what it found into the chain, so the cut is never forgotten
    log2.append("next", "z")
    recovered = [e for e in log2.entries() if e["action"] == "audit.recovered"]
    assert "entries were removed from the end" in recovered[0]["detail"]["head"]
    result = log2.verify()
    assert result.ok and any("removed from the end" in w for w in result.warnings)


def test_deleting_log_and_head_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log.path.unlink()
    log.head_path.unlink()
    result = log.verify()
    assert not result.ok and "the log was deleted, replaced or rewritten" in result.reason
    log.append("after.deletion", "x")  # a new log: its first entry records what it replaced
    result = log.verify()
    assert result.ok and any("an earlier log was deleted" in w for w in result.warnings)


def test_a_rewritten_head_is_found(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    head = json.loads(log.head_path.read_text())
    head["seq"] = 3
    log.head_path.write_text(json.dumps(head))
    result = log.verify()
    assert not result.ok and "rewritten" in result.reason


def test_a_missing_key_is_an_error_not_a_pass(tmp_path: Path) -> None:
    log = make_log(tmp_path)
    log_id = next(log.entries())["log"]
    elsewhere = AuditLog(log.path, keys=AuditKeys(home=tmp_path / "other-home"))
    result = elsewhere.verify()
    assert not result.ok and f"no key is at {tmp_path / 'other-home' / 'keys' / log_id}" in (
        result.reason
    )


def test_team_key_from_the_environment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    keys = AuditKeys.from_environ(
        {"OPSLOOP_AUDIT_KEY": "ab" * 32, "OPSLOOP_CONFIG_HOME": str(home)}
    )
    log = AuditLog(tmp_path / "audit.jsonl", keys=keys)
    log.append("a", "b")
    assert not (home / "keys").exists()  # the team's key is used; none is made
    assert log.verify().ok
    wrong = AuditLog(log.path, keys=AuditKeys(home=tmp_path / "h", env_key="cd" * 32))
    assert "edited" in wrong.verify().reason
    bad = AuditKeys.from_environ({"OPSLOOP_AUDIT_KEY": "short"})
    with pytest.raises(Exception, match="at least 32 hex digits"):
        AuditLog(tmp_path / "b.jsonl", keys=bad).append("a", "b")


def test_an_old_unkeyed_log_stays_readable_and_is_keyed_by_the_next_append(
    tmp_path: Path,
) -> None:
    log = AuditLog(tmp_path / "audit.jsonl")
    write_legacy(log.path, 5)
    result = log.verify()
    assert result.ok and result.unkeyed == 5 and "unkeyed" in result.describe()
    log.append("new.change", "x")
    entries = list(log.entries())
    assert [e["action"] for e in entries[5:]] == ["audit.keyed", "new.change"]
    assert entries[5]["detail"]["unkeyed_entries"] == 5
    result = log.verify()
    assert result.ok and result.unkeyed == 5 and "unkeyed up to entry 5" in result.describe()
    lines = rows(log)  # an old entry edited afterwards is still found (its SHA-256 breaks)
    old = json.loads(lines[2])
    old["after"] = {"v": 0}
    lines[2] = json.dumps(old, sort_keys=True)
    write_rows(log, lines)
    assert log.verify().bad_seq == 3


# ---------------------------------------------------------------------- damaged files
@pytest.mark.parametrize(
    ("junk", "said"),
    [
        (b"[1, 2, 3]\n", "valid JSON but not an object (a list)"),
        (b'"just a string"\n', "valid JSON but not an object (a str)"),
        (b'{"seq": 5, "x": "\xff\xfe"}\n', "not valid UTF-8"),
        (b"not json\n", "not valid JSON"),
    ],
)
def test_a_line_that_is_not_an_entry_is_named_by_its_line(
    tmp_path: Path, junk: bytes, said: str
) -> None:
    log = make_log(tmp_path)
    with log.path.open("ab") as fh:
        fh.write(junk)
    result = log.verify()
    assert not result.ok and result.bad_line == 5 and said in result.reason
    assert result.describe().startswith("line 5 is bad")


@pytest.mark.parametrize("head", [b"[1]", b"{not json", b'{"seq": "x"}', b"\xff"])
def test_a_malformed_head_is_reported(tmp_path: Path, head: bytes) -> None:
    log = make_log(tmp_path)
    log.head_path.write_bytes(head)
    result = log.verify()
    assert not result.ok and "head file" in result.reason


def test_cli_verify_reports_damage_in_one_line_exit_1(tmp_path: Path) -> None:
    make_project(tmp_path).audit.append("x", "y")
    log_path = tmp_path / ".opsloop" / "audit.jsonl"
    with log_path.open("ab") as fh:
        fh.write(b"[1, 2]\n")
    out = subprocess.run(
        [sys.executable, "-c", "from opsloop.cli import main; main()", "audit", "verify"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert out.returncode == 1, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "line 2 is bad" in lines[0] and "not an object" in lines[0]


def test_append_reads_only_the_tail(tmp_path: Path) -> None:
    """Damage in the middle does not stop an append (it no longer re-reads the file); verify
    still finds it."""
    log = make_log(tmp_path, 6)
    lines = rows(log)
    lines[2] = "garbage in the middle"
    write_rows(log, lines)
    log.append("still.works", "x")
    assert rows(log)[-1].startswith("{") and log.verify().bad_line == 3


# ------------------------------------------------------------------------------- torn tail
def test_a_torn_tail_is_recovered_at_every_byte_offset(tmp_path: Path) -> None:
    base = make_log(tmp_path / "base", 3)
    whole = base.path.read_bytes()
    head = base.head_path.read_bytes()
    # the line a crashed append was writing: a real entry of this log, never finished
    base.append("crashed.change", "t9", after={"v": "x" * 40})
    torn_line = base.path.read_bytes()[len(whole) :]
    assert torn_line.endswith(b"\n")
    for cut in range(1, len(torn_line)):
        log = AuditLog(tmp_path / f"cut{cut}" / "audit.jsonl")
        log.path.parent.mkdir()
        log.path.write_bytes(whole + torn_line[:cut])
        log.head_path.write_bytes(head)
        assert log.verify().ok  # a torn tail is a crash, not tampering: a warning
        log.append("next.change", "t4")
        entries = list(log.entries())
        assert [e["action"] for e in entries[3:]] == ["audit.recovered", "next.change"], cut
        assert entries[3]["detail"]["torn_tail"]["bytes"] == cut
        result = log.verify()
        assert result.ok and result.entries == 5, (cut, result)
        quarantined = json.loads(log.quarantine_path.read_text())
        assert quarantined["bytes"] == cut and quarantined["offset"] == len(whole)


def _crash_mid_emit(root: str, share: float) -> None:
    """In a child: emit a record, dying when ``share`` of its audit line is written."""
    project = make_project(Path(root))
    real_write = os.write

    def torn_write(fd: int, data: bytes) -> int:
        if b'"crash"' in data:
            real_write(fd, data[: min(len(data) - 1, max(1, int(len(data) * share)))])
            os._exit(3)  # the power goes out mid-write
        return real_write(fd, data)

    os.write = torn_write
    project.emit(Signal(source="test", type="probe", subject="crash"), "probe.raise", "crash")


def test_a_crash_mid_emit_leaves_no_unaudited_change(tmp_path: Path) -> None:
    """A real process dies while writing the audit entry of a record: the record is not
    stored (its transaction never committed), the next emit recovers the torn line, and
    every stored record is covered by the chain."""
    root = tmp_path / "project"
    project = make_project(root)
    project.emit(Signal(source="test", type="probe", subject="before"), "probe.raise", "before")
    project.close()
    ctx = multiprocessing.get_context("fork")
    for cut, share in enumerate((0.0, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999)):
        child = ctx.Process(target=_crash_mid_emit, args=(str(root), share))
        child.start()
        child.join(60)
        assert child.exitcode == 3
        project = make_project(root)
        try:
            signals = [s.subject for s in project.records.list(Signal)]
            assert "crash" not in signals  # the change was never stored
            before = project.verify_audit()
            assert before.ok, before.describe()
            assert any("incomplete last entry" in w for w in before.warnings)
            project.emit(Signal(source="test", type="probe", subject=f"after{cut}"))
            after = project.verify_audit()
            assert after.ok and not any("incomplete" in w for w in after.warnings)
            actions = [e["action"] for e in project.audit.entries()]
            assert actions[-2:] == ["audit.recovered", "record.signal"]
        finally:
            project.close()


# ------------------------------------------------------------------- records vs the chain
def _checks(project: Project) -> dict[str, Any]:
    return {c.name: c for group in project.hook.register_checks(project=project) for c in group}


def _tamper_records(project: Project, sql: str, params: tuple[Any, ...] = ()) -> None:
    path = project.records.path
    project.close()
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute("DROP TRIGGER records_no_update")
    db.execute("DROP TRIGGER records_no_delete")
    db.execute(sql, params)
    db.close()


def _project_with_records(root: Path) -> tuple[Project, list[Signal]]:
    project = make_project(root)
    signals = [Signal(source="test", type="probe", subject=f"s{i}", summary="x") for i in range(3)]
    for signal in signals:
        project.emit(signal, "probe.raise", signal.subject)
    assert project.verify_audit().ok
    return project, signals


def test_an_edited_record_row_is_found(tmp_path: Path) -> None:
    project, signals = _project_with_records(tmp_path)
    body = signals[1].to_json().replace('"summary": "x"', '"summary": "nothing to see"')
    _tamper_records(project, "UPDATE records SET body = ? WHERE id = ?", (body, signals[1].id))
    reopened = make_project(tmp_path)
    assert reopened.records.triggers_were_missing  # recreated now, but noticed
    result = reopened.verify_audit()
    assert not result.ok and f"record {signals[1].id} (signal) was changed" in result.reason
    assert any("triggers were dropped" in w for w in result.warnings)
    checks = _checks(reopened)
    assert not checks["records append-only"].ok and not checks["audit log chain"].ok
    reopened.close()


def test_a_deleted_record_row_is_found(tmp_path: Path) -> None:
    project, signals = _project_with_records(tmp_path)
    _tamper_records(project, "DELETE FROM records WHERE id = ?", (signals[0].id,))
    reopened = make_project(tmp_path)
    result = reopened.verify_audit()
    assert not result.ok and f"record {signals[0].id}" in result.reason
    assert "missing from the records store" in result.reason
    reopened.close()


def test_a_row_added_outside_opsloop_is_found(tmp_path: Path) -> None:
    project, _ = _project_with_records(tmp_path)
    smuggled = Signal(source="x", type="probe", subject="smuggled")
    project.records.add(smuggled)  # straight into the store: no audit entry
    result = project.verify_audit()
    assert not result.ok and smuggled.id in result.reason
    project.close()


def test_records_stored_before_keying_are_committed_by_the_keyed_entry(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    old = Signal(source="x", type="probe", subject="old")
    project.records.add(old)  # a record from before keying (the old code stored these)
    write_legacy(project.audit.path, 2)
    assert project.verify_audit().ok
    project.audit.append("first.keyed", "x")
    keyed = [e for e in project.audit.entries() if e["action"] == "audit.keyed"]
    assert keyed[0]["detail"]["records"]["count"] == 1
    assert project.verify_audit().ok
    project.close()
    _tamper_records(make_project(tmp_path), "DELETE FROM records WHERE id = ?", (old.id,))
    reopened = make_project(tmp_path)
    assert "were stored before the log was keyed" in reopened.verify_audit().reason
    reopened.close()


def test_a_failed_change_rolls_its_record_back_and_says_so(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    signal = Signal(source="x", type="probe", subject="s")
    with pytest.raises(RuntimeError), project.recording(signal, "probe.change", "s"):
        raise RuntimeError("the change failed")
    assert project.records.list(Signal) == []
    actions = [e["action"] for e in project.audit.entries()]
    assert actions == ["probe.change", "probe.change.failed"]
    assert project.verify_audit().ok  # the .failed entry accounts for the missing record
    project.close()


# ----------------------------------------------------------------------------- incidents
def _emit_signals(root: str, subjects: list[str], start: Any) -> None:
    project = make_project(Path(root))
    start.wait()
    for subject in subjects:
        project.emit(Signal(source="test", type="drift", subject=subject, summary="drift"))
    project.close()


def test_four_processes_open_one_incident_per_subject(tmp_path: Path) -> None:
    root = tmp_path / "project"
    make_project(root).close()
    subjects = [f"model-{i}" for i in range(20)]
    ctx = multiprocessing.get_context("fork")
    start = ctx.Barrier(4)
    workers = [
        ctx.Process(target=_emit_signals, args=(str(root), subjects[i:] + subjects[:i], start))
        for i in range(4)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    project = make_project(root)
    try:
        opened = list_incidents(project, open_only=True)
        assert sorted(v.incident.subject for v in opened) == sorted(subjects)
        assert len(project.records.list(Incident)) == 20
        result = project.verify_audit()
        assert result.ok, result.describe()
    finally:
        project.close()


def test_a_resolved_incident_frees_its_key(tmp_path: Path) -> None:
    from opsloop.respond import update_incident

    project = make_project(tmp_path)
    project.emit(Signal(source="t", type="drift", subject="m", summary="d"))
    (first,) = list_incidents(project, open_only=True)
    project.emit(Signal(source="t", type="drift", subject="m", summary="d"))
    assert len(list_incidents(project)) == 1  # attached, not opened again
    update_incident(project, first.incident.id, "resolved")
    project.emit(Signal(source="t", type="drift", subject="m", summary="d"))
    opened = list_incidents(project, open_only=True)
    assert len(opened) == 1 and opened[0].incident.id != first.incident.id
    with pytest.raises(Exception, match="is open for the same rule and subject"):
        update_incident(project, first.incident.id, "open")
    project.close()


# --------------------------------------------------------------------------- private home
def _modes(home: Path) -> dict[str, int]:
    return {
        str(p.relative_to(home)): stat.S_IMODE(p.stat().st_mode)
        for p in [home, *home.rglob("*")]
        if not p.is_symlink()
    }


def _write_everything(root: str) -> None:
    import duckdb

    project = make_project(Path(root))
    project.emit(Signal(source="t", type="drift", subject="m", summary="d"))
    duckdb.connect(str(project.warehouse_path)).execute("CREATE TABLE t AS SELECT 1 AS x")
    log = project.path("predictions", "m.jsonl")
    log.write_text("{}\n")
    project.close()


@pytest.mark.parametrize("shared", [False, True])
def test_the_project_home_is_private(tmp_path: Path, shared: bool) -> None:
    root = tmp_path / "project"
    root.mkdir()
    (root / "opsloop.toml").write_text(f"[project]\nshare_group = {str(shared).lower()}\n")
    old = os.umask(0o022)
    try:  # a child process: opening a project sets the process umask
        child = multiprocessing.get_context("fork").Process(target=_write_everything, args=(root,))
        child.start()
        child.join(60)
    finally:
        os.umask(old)
    assert child.exitcode == 0
    modes = _modes(root / ".opsloop")
    assert {".", "records.sqlite", "audit.jsonl", "audit.jsonl.head", "warehouse.duckdb"} <= set(
        modes
    ), modes
    closed = 0o007 if shared else 0o077
    loose = {name: oct(mode) for name, mode in modes.items() if mode & closed}
    assert not loose
    assert modes["."] == (0o2770 if shared else 0o700)
    if shared:  # the team can write the records store, and read the rest
        assert modes["records.sqlite"] & 0o060 == 0o060
        assert all(mode & 0o040 for mode in modes.values())


def test_doctor_flags_a_home_others_can_read(tmp_path: Path) -> None:
    project = make_project(tmp_path)
    project.audit.append("x", "y")
    os.chmod(project.home, 0o755)
    checks = _checks(project)
    assert (
        not checks["project home private"].ok
        and "chmod 700" in checks["project home private"].detail
    )
    project.close()
    shutil.rmtree(project.home)
