"""The gate knows what each pending statement does to each table and how big that table is (issue 18):
on a table of 1,000,000 rows, a non-concurrent CREATE INDEX is refused beyond the budget, its
CONCURRENTLY form passes, allow_blocking lets the blocking form run, and a DO block that drops a
table needs allow_destructive.

On this machine an index build on 1,000,000 rows (about 65 MB) takes about a second, inside the
default budget of 5 s, as it should: the runs here give max_blocking_seconds=0.2, a budget the
blocking build exceeds whatever the machine's speed, so that the refusal is certain."""

from __future__ import annotations

from pathlib import Path

import pytest
from playbook_target import PHRASE, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS

ROWS = 1_000_000
BUDGET = {"max_blocking_seconds": 0.2}


def events_table(target, rows: int):
    """A table the app writes to, outside Prisma's models (narrow rows: the dumps stay small)."""
    target.db.execute(
        'CREATE TABLE "events" (id bigint PRIMARY KEY, account int NOT NULL, kind int NOT NULL);'
        f'INSERT INTO "events" SELECT g, g % 5000, g % 7 FROM generate_series(1, {rows}) g;'
        'ALTER TABLE "events" OWNER TO app;'
        'ANALYZE "events"'
    )


@pytest.fixture
def target(tmp_path, database):
    return make_target(tmp_path, database)


def snapshots(target) -> list[Path]:
    """Snapshots of either format (a database this size is dumped in directory format)."""
    return sorted(target.backup_dir.glob("*.manifest.json")) if target.backup_dir.exists() else []


def index_exists(target, name: str) -> bool:
    return target.db.query(
        "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname = %s AND i.indisvalid",
        (name,),
    ) == [(1,)]


def test_a_blocking_index_build_on_a_million_rows_is_refused_and_its_concurrent_form_is_not(target):
    events_table(target, ROWS)
    # CONCURRENTLY blocks nothing: it passes a budget of 0.2 s (with the release's own migrations).
    target.app.add_migration(
        "20240301090000_events_account", 'CREATE INDEX CONCURRENTLY "events_account_idx" ON "events"("account");\n'
    )
    run = target.run({"confirm": PHRASE, **BUDGET})
    assert run.rc == 0, run.stdout[-3000:]
    assert index_exists(target, "events_account_idx")
    assert len(snapshots(target)) == 1

    # The same index without CONCURRENTLY: refused at the gate, before the snapshot, nothing changed.
    target.app.add_migration("20240302090000_events_kind", 'CREATE INDEX "events_kind_idx" ON "events"("kind");\n')
    run = target.run({"confirm": PHRASE, **BUDGET})
    assert run.rc != 0
    message = " ".join(run.report["message"].split())
    assert "-e allow_blocking=true" in message, message
    assert "20240302090000_events_kind/migration.sql:1" in message
    assert "blocks writes of public.events (1.0 M rows" in message  # the live row estimate
    assert "for ~" in message
    assert "index build at the rate of" in message
    assert "CREATE INDEX CONCURRENTLY" in message  # the safe form
    flat = " ".join(run.stdout.split())
    assert "BLOCKING statements (1; 1 over max_blocking_seconds=0.2" in flat
    assert "[OVER THE BUDGET]" in flat
    assert not index_exists(target, "events_kind_idx")
    assert target.applied() == [*MIGRATIONS, "20240301090000_events_account"]
    assert len(snapshots(target)) == 1  # no new snapshot: the gate stopped first
    assert no_advisory_locks(target.db)

    # With allow_blocking it runs, and the report's table names the statement and the estimate.
    run = target.run({"confirm": PHRASE, "allow_blocking": True, **BUDGET})
    assert run.rc == 0, run.stdout[-3000:]
    assert index_exists(target, "events_kind_idx")
    [blocking] = run.report["blocking"]
    assert blocking["estimate"]["relation"] == "public.events"
    assert blocking["estimate"]["seconds"] > 0
    summary = sorted(target.report_dir.glob("*-localhost.md"))[-1].read_text()
    assert "| `prisma/migrations/20240302090000_events_kind/migration.sql:1` | SHARE on `public.events` |" in summary
    assert_no_secret(run, target)


def test_a_do_block_that_drops_a_table_needs_allow_destructive(target):
    events_table(target, 1000)
    target.app.add_migration("20240301090000_drop_events", 'DO $$\nBEGIN\n  DROP TABLE "events";\nEND\n$$;\n')
    run = target.run({"confirm": PHRASE})
    assert run.rc != 0
    assert "-e allow_destructive=true" in run.report["message"]
    assert "table public.events" in run.report["message"]
    assert target.db.query("SELECT count(*) FROM events") == [(1000,)]
    assert snapshots(target) == []
    assert target.applied() == MIGRATIONS[:2]
