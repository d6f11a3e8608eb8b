from __future__ import annotations

import hashlib

from prisma_history import audit, local_migrations


def row(name, checksum="c", finished=True, rolled_back=False, logs=False):
    return {
        "name": name,
        "checksum": checksum,
        "finished_at": "2024-01-01T00:00:00" if finished else None,
        "rolled_back_at": "2024-01-02T00:00:00" if rolled_back else None,
        "has_logs": logs,
    }


def test_every_category():
    local = {"a": "c", "b": "EDITED", "c": "c", "d": "c", "e": "c", "f": "c"}
    rows = [
        row("a"),
        row("b"),
        row("c", finished=False, logs=True),  # failed
        row("d", finished=False),  # started, never finished
        row("e", finished=False, rolled_back=True),  # rolled back: pending again
        row("gone"),  # applied, missing locally
    ]
    r = audit(rows, local)
    assert r["applied"] == ["a", "b", "gone"]
    assert r["failed"] == ["c"]
    assert r["in_progress"] == ["d"]
    assert r["rolled_back"] == ["e"]
    assert r["pending"] == ["e", "f"]
    assert r["checksum_mismatch"] == ["b"]
    assert r["missing_locally"] == ["gone"]
    assert r["ok"] is False
    assert len(r["problems"]) == 4
    assert all(" - " in p for p in r["problems"])  # each says what to do


def test_failed_then_reapplied_is_applied():
    rows = [row("a", finished=False, logs=True), row("a", finished=False, rolled_back=True), row("a")]
    r = audit(rows, {"a": "c"})
    assert r["applied"] == ["a"]
    assert r["failed"] == []
    assert r["rolled_back"] == []
    assert r["ok"] is True


def test_empty_history_everything_pending():
    r = audit([], {"0_init": "x", "1_next": "y"})
    assert r["pending"] == ["0_init", "1_next"]
    assert r["ok"] is True


def test_local_migrations_hashes_migration_sql(tmp_path):
    (tmp_path / "0_init").mkdir()
    (tmp_path / "0_init" / "migration.sql").write_bytes(b"CREATE TABLE t (id int);\n")
    (tmp_path / "not_a_migration").mkdir()
    (tmp_path / "migration_lock.toml").write_text('provider = "postgresql"\n')
    assert local_migrations(str(tmp_path)) == {"0_init": hashlib.sha256(b"CREATE TABLE t (id int);\n").hexdigest()}
