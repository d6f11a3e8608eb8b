from __future__ import annotations

import hashlib

import pytest
from prisma_history import audit, compare_pending, local_migrations
from prisma_status import parse_migrate_status


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


# --- compare_pending: Prisma's pending list against the audit (issue 16 B) -----------------------------------

UNUSUAL = ["20240101000000_a b", "20240102000000_c+d", "20240103000000_café", "20240104000000_🚀", " lead", "trail "]


def local_of(names) -> dict:
    return dict.fromkeys(names, "c")


def status_of(pending, state="pending") -> dict:
    return {"state": state, "pending": list(pending)}


def test_unusual_names_local_to_prisma_to_audit(tmp_path):
    """The whole path: folders with unusual names, Prisma's printed list parsed, the audit of the same
    folders - the same names, exactly."""
    for name in UNUSUAL:
        (tmp_path / name).mkdir()
        (tmp_path / name / "migration.sql").write_text("SELECT 1;\n")
    local = local_migrations(str(tmp_path))
    assert sorted(local) == sorted(UNUSUAL)
    printed = "Following migrations have not yet been applied:\n" + "\n".join(sorted(UNUSUAL)) + "\n\nTo apply ...\n"
    check = compare_pending(parse_migrate_status(printed, 1), audit([], local), "app")
    assert check == {
        "ok": True,
        "compared": True,
        "only_in_prisma": [],
        "only_in_audit": [],
        "msg": f"prisma migrate status and the history audit in database app agree: {len(UNUSUAL)} pending",
    }


def test_order_does_not_matter_names_do():
    r = audit([], local_of(UNUSUAL))
    assert compare_pending(status_of(reversed(UNUSUAL)), r)["ok"] is True
    check = compare_pending(status_of([n.strip() for n in UNUSUAL]), r)  # a parser that strips would be caught
    assert check["ok"] is False
    assert check["only_in_prisma"] == ["lead", "trail"]
    assert check["only_in_audit"] == [" lead", "trail "]
    assert '"trail "' in check["msg"]  # JSON-quoted: the space shows


def test_a_list_cut_short_stops_the_run():
    """The defect of issue 16 B: the gate showed 1 migration while the deploy applied 5."""
    local = local_of(["20240101000000_init", "20240102000000_add space", "20240103000000_c+d", "20240104000000_e"])
    r = audit([], local)
    check = compare_pending(status_of(["20240101000000_init"]), r, "app")
    assert check["ok"] is False
    assert check["only_in_audit"] == ["20240102000000_add space", "20240103000000_c+d", "20240104000000_e"]
    assert check["msg"].startswith(
        'prisma migrate status lists 1 pending migration(s) ("20240101000000_init") but the audit of'
        " _prisma_migrations in database app against the checkout's migration folders finds 4"
    )
    assert 'only in Prisma\'s list: none; only in the audit: "20240102000000_add space"' in check["msg"]
    assert "the gate would show one list and the deploy apply another" in check["msg"]
    assert "\n" not in check["msg"]


def test_hints():
    rolled = audit([row("a"), row("b", finished=False, rolled_back=True)], local_of(["a", "b"]))
    assert rolled["pending"] == ["b"]
    check = compare_pending(status_of([], "up_to_date"), rolled)
    assert check["ok"] is False
    assert "marked rolled back is applied again" in check["msg"]
    no_sql = compare_pending(status_of(["a", "b", "c no sql"]), audit([], local_of(["a", "b"])))
    assert no_sql["only_in_prisma"] == ["c no sql"]
    assert "may have no migration.sql" in no_sql["msg"]
    for c in (check, no_sql):
        assert "check that Prisma reads this database (directUrl, prisma.config.ts, .env)" in c["msg"]


def test_a_name_with_a_line_break():
    r = audit([], local_of(["20240101000000_a\nb"]))
    printed = "Following migration have not yet been applied:\n20240101000000_a\nb\n\n"
    check = compare_pending(parse_migrate_status(printed, 1), r)
    assert check["ok"] is False
    assert check["only_in_audit"] == ["20240101000000_a\nb"]
    assert "\n" not in check["msg"]
    assert '"20240101000000_a\\nb"' in check["msg"]


def test_a_name_listed_twice():
    check = compare_pending(status_of(["a", "a"]), audit([], local_of(["a"])))
    assert check["ok"] is False
    assert 'listed "a" more than once' in check["msg"]


@pytest.mark.parametrize("state", ["failed", "diverged", "not_managed", "error"])
def test_other_states_are_not_compared(state):
    check = compare_pending(status_of([], state), audit([], local_of(["a"])))
    assert check == {"ok": True, "compared": False, "only_in_prisma": [], "only_in_audit": [],
                     "msg": f"not compared: prisma migrate status says {state}"}  # fmt: skip


def test_long_lists_are_shortened_in_the_message():
    names = [f"{20240101000000 + i}_m {i}" for i in range(3000)]
    check = compare_pending(status_of(names[:10]), audit([], local_of(names)), "app")
    assert check["ok"] is False
    assert len(check["only_in_audit"]) == 2990
    assert "(+2980 more)" in check["msg"]
    assert len(check["msg"]) < 2000
