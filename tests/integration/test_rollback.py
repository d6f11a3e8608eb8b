"""playbooks/rollback.yml and playbooks/rehearse.yml against a real PostgreSQL:
restores that lose nothing, and failures that change nothing (issue #5)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from pgcluster import wait_until
from playbook_target import PHRASE, ROOT, Target, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS

# Also on Prisma 6.19.3 (@pytest.mark.prisma6): the rollback of a migration Prisma 6 left half-applied (what
# that major records for a failure). The round trip, the rehearsal, pg_dump, pg_restore, a crash, a full disk,
# the snapshot checks and the gates are the project's own work: Prisma 7 only.

BULK = """
CREATE TABLE IF NOT EXISTS "bulk" (id int PRIMARY KEY, payload text);
INSERT INTO "bulk" SELECT g, md5(g::text) || md5((g * 7)::text) FROM generate_series(1, {rows}) g;
ALTER TABLE "bulk" OWNER TO app;
"""


@pytest.fixture
def target(tmp_path, database):
    return make_target(tmp_path, database)


def migrated(target: Target) -> None:
    run = target.run({"confirm": PHRASE})
    assert run.rc == 0, run.report.get("message")


def manifest_of(snapshot: Path) -> dict:
    return json.loads(Path(str(snapshot) + ".manifest.json").read_text())


def test_round_trip_restores_every_row(target):
    before = target.table_digest()
    migrated(target)
    [pre_migration] = target.snapshots()
    target.db.execute("INSERT INTO producers (name, email, region) VALUES ('Late', 'late@example.gr', 'Naxos')")
    assert target.table_digest() != before

    run = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert run.rc == 0, run.report.get("message")
    assert target.table_digest() == before
    assert target.applied() == MIGRATIONS[:2]
    report = run.report
    assert report["result"] == "restored"
    assert report["restored_snapshot"] == str(pre_migration)
    assert report["lost_migrations"] == MIGRATIONS[2:]
    safety = Path(report["restore"]["safety_snapshot"])
    assert manifest_of(safety)["purpose"] == "safety"
    assert manifest_of(safety)["applied_migrations"] == MIGRATIONS
    assert safety.stat().st_mode & 0o777 == 0o600
    assert "-e snapshot=" + str(safety) in report["next_step"]
    assert no_advisory_locks(target.db)
    assert_no_secret(run, target)

    # `latest` skips safety snapshots: a second rollback restores the same pre-migration state.
    again = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert again.rc == 0
    assert again.report["restored_snapshot"] == str(pre_migration)
    assert target.table_digest() == before


def test_directory_format_snapshot_round_trip(target):
    """The directory format (auto picks it for big databases) snapshots, verifies and restores like the file."""
    before = target.table_digest()
    run = target.run({"confirm": PHRASE, "backup_format": "directory", "backup_jobs": 2})
    assert run.rc == 0, run.report.get("message")
    assert run.report["snapshot"]["format"] == "directory"
    [snapshot] = sorted(target.backup_dir.glob("*.dir"))
    assert snapshot.stat().st_mode & 0o777 == 0o700
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in snapshot.iterdir())
    assert manifest_of(snapshot)["format"] == "directory"

    run = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert run.rc == 0, run.report.get("message")
    assert run.report["restored_snapshot"] == str(snapshot)
    assert target.table_digest() == before
    assert target.applied() == MIGRATIONS[:2]


@pytest.mark.prisma6
def test_half_failed_migration_then_rollback(target):
    before = target.table_digest()
    target.app.add_migration(
        "20240301090000_reprice",
        'CREATE TABLE "price_audit" (id int);\n'
        'INSERT INTO "price_audit" VALUES (1);\n'
        'UPDATE "products" SET "price_cents" = "price_cents" * 2 WHERE id > 0;\n'
        "SELECT 1 / 0;\n",
    )
    run = target.run({"confirm": PHRASE})
    assert run.rc != 0
    assert run.report["failed_migration"] == "20240301090000_reprice"
    # What a failed migration leaves depends on the engine (tests/fixtures/prisma7-app/README.md): statement by
    # statement (both fixtures' WebAssembly engine over adapter-pg; the native engine from Prisma 7.4) keeps the
    # first statements; one implicit transaction (the native engine before 7.4) keeps nothing. Either way the
    # rollback must give back the data as it was.
    prices = target.db.query("SELECT price_cents FROM products ORDER BY id")
    if target.db.query("SELECT to_regclass('public.price_audit') IS NOT NULL") == [(True,)]:
        assert prices == [(2500,), (1580,)]  # half applied: the table, its row and the doubled prices stayed
    else:
        assert prices == [(1250,), (790,)]  # one transaction: nothing stayed

    rollback = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert rollback.rc == 0, rollback.report.get("message")
    assert target.table_digest() == before
    assert target.db.query("SELECT to_regclass('public.price_audit')") == [(None,)]
    assert target.applied() == MIGRATIONS[:2]


def test_server_crash_during_restore_changes_nothing(target, pg_cluster):
    target.db.execute(BULK.format(rows=300000))
    snapshot_then_deploy(target)
    target.db.execute("INSERT INTO producers (name, email, region) VALUES ('Late', 'late@example.gr', 'Naxos')")
    after_migration = target.table_digest()

    proc = target.start({"confirm": PHRASE}, playbook="rollback.yml")
    try:
        assert target.wait_for_session("application_name = 'prisma-restore' AND query LIKE 'COPY%%'", proc=proc), (
            "the restore never started copying"
        )
        pg_cluster.crash()
    finally:
        out, _ = proc.communicate(timeout=300)
    pg_cluster.start_again()
    assert proc.returncode != 0, out[-2000:]
    assert target.table_digest() == after_migration
    assert target.applied() == MIGRATIONS
    report = json.loads(sorted(target.report_dir.glob("*-rollback-localhost.json"))[-1].read_text())
    assert "rolled back" in report["next_step"] or "Nothing was changed" in report["next_step"]

    assert wait_until(lambda: no_advisory_locks(target.db), timeout=15)
    again = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert again.rc == 0, again.report.get("message")
    assert target.applied() == MIGRATIONS[:2]


def test_server_crash_during_pg_dump_stops_before_migrating(target, pg_cluster):
    target.db.execute(BULK.format(rows=400000))
    proc = target.start({"confirm": PHRASE})
    try:
        assert target.wait_for_session(
            "application_name = 'prisma-snapshot' AND query LIKE 'COPY%%'", interval=0.02, proc=proc
        ), "pg_dump never started copying"
        pg_cluster.crash()
    finally:
        out, _ = proc.communicate(timeout=300)
    pg_cluster.start_again()
    assert proc.returncode != 0
    assert target.applied() == MIGRATIONS[:2]
    assert target.snapshots() == []
    assert list(target.backup_dir.glob("*.partial")) == []
    assert "nothing was migrated" in out.lower() or "Nothing was migrated" in out


def test_disk_full_while_dumping(tmp_path, target):
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        target.db.execute(BULK.format(rows=20000))
        # The space checks refuse first, clearly:
        run = target.run({"confirm": PHRASE, "backup_dir": str(small)})
        assert "Not enough space for the snapshot" in run.report["message"]
        assert target.applied() == MIGRATIONS[:2]
        # With the checks disabled, pg_dump really hits ENOSPC:
        run = target.run(
            {
                "confirm": PHRASE,
                "backup_dir": str(small),
                "backup_min_free_ratio": 0,
            }
        )
        assert run.rc != 0
        assert "pg_dump failed" in run.report["message"]
        assert "nothing was migrated" in run.report["message"]
        assert target.applied() == MIGRATIONS[:2]
        assert [p.name for p in small.iterdir() if not p.name.startswith(".")] == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_corrupted_and_foreign_snapshots_are_refused_before_the_gate(target, pg_cluster, tmp_path):
    snapshot_then_deploy(target)
    [snapshot] = target.snapshots()
    digest = target.table_digest()
    data = bytearray(snapshot.read_bytes())
    data[len(data) // 2] ^= 0xFF
    snapshot.write_bytes(bytes(data))
    run = target.run({}, playbook="rollback.yml")  # no confirm: it must stop before asking
    assert "is damaged: its SHA-256" in run.report["message"]
    assert "RESTORE PLAN" not in run.stdout
    assert target.table_digest() == digest

    other = pg_cluster.create_database()
    run = target.run({"snapshot": str(snapshot)}, url=other.url(), playbook="rollback.yml")
    assert f"not of the target {other.name}" in run.report["message"]
    assert other.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_rehearsal_refuses_the_production_database(target):
    snapshot_then_deploy(target)
    run = target.run({"rehearsal_database_url": target.db.url()}, playbook="rehearse.yml")
    assert run.rc != 0
    assert "a rehearsal never touches production" in run.stdout
    assert target.applied() == MIGRATIONS


def take_snapshot(target: Target) -> Path:
    """A production snapshot taken by the project's own module, as migrate.yml takes it."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "ansible"),
            "localhost",
            "-m",
            "prisma_snapshot",
            "-a",
            # The URL as the module's option (no DATABASE_URL fallback), templated from the environment
            json.dumps({"dest_dir": str(target.backup_dir), "database_url": "{{ lookup('env', 'DATABASE_URL') }}"}),
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": target.db.url(), "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-2000:]
    [snapshot] = target.snapshots()
    return snapshot


def snapshot_then_deploy(target: Target) -> Path:
    """What a migrate.yml run leaves for a rollback, for the tests that need it only as their starting point:
    the pre-migration snapshot by the project's own module, then ``prisma migrate deploy`` of the new release
    (about 5 CPU-s where the whole playbook takes about 25; test_round_trip_restores_every_row runs the
    real chain)."""
    snapshot = take_snapshot(target)
    deployed = target.app.prisma("migrate", "deploy", database_url=target.db.url())
    assert deployed.rc == 0, deployed.output
    assert target.applied() == MIGRATIONS
    return snapshot


# A statement known to hold ACCESS EXCLUSIVE on orders for about a second: a column whose volatile default
# sleeps 1 s per row rewrites the table (orders has one row). No ';' inside the function's body: the
# fixtures' adapter splits a migration on ';'.
SLOW = (
    "20240302090000_slow_column",
    'CREATE FUNCTION "slow_default"() RETURNS integer LANGUAGE sql AS $$ SELECT 1 FROM pg_sleep(1) $$;\n'
    'ALTER TABLE "orders" ADD COLUMN "slow" INTEGER NOT NULL DEFAULT "slow_default"();\n',
)


def test_rehearsal_restores_production_into_staging_and_migrates_it(target, pg_cluster):
    """... and measures the locks: the statement that holds ACCESS EXCLUSIVE on orders for about a second
    is measured at about a second, kept for the production run, and quoted by its plan."""
    before = target.table_digest()
    target.app.add_migration("20240301090000_add_note", 'ALTER TABLE "orders" ADD COLUMN "note" TEXT;\n')
    target.app.add_migration(*SLOW)
    prod_snapshot = take_snapshot(target)
    staging = pg_cluster.create_database()

    rehearsal = target.run({"rehearsal_database_url": staging.url()}, playbook="rehearse.yml")
    assert rehearsal.rc == 0, rehearsal.stdout[-4000:]
    reports = {r["playbook"]: r for r in rehearsal.reports}
    assert reports["rehearse.yml"]["restored_snapshot"] == str(prod_snapshot)
    migrate_report = reports["migrate.yml"]
    assert migrate_report["result"] == "migrated"
    assert migrate_report["database"]["name"] == staging.name
    assert migrate_report["applied"] == [*MIGRATIONS[2:], "20240301090000_add_note", SLOW[0]]
    [orders] = [
        lock
        for lock in migrate_report["locks_observed"]["locks"]
        if lock["relation"] == "public.orders" and lock["mode"] == "ACCESS EXCLUSIVE"
    ]
    assert 0.7 <= orders["held_s"] <= 3.0, orders  # the sampler's 50 ms steps, on a busy machine
    assert orders["blocks"] == "reads and writes"
    assert any(st.startswith('ALTER TABLE "orders" ADD COLUMN "slow"') for st in orders["statements"]), orders
    [kept] = list((target.report_dir / "rehearsals").glob("*.json"))
    assert json.loads(kept.read_text())["locks_observed"] == migrate_report["locks_observed"]
    plan = target.run({"confirm": PHRASE}, check=True)  # production's plan of the same migrations
    flat = " ".join(plan.stdout.split())
    rehearsed_at = json.loads(kept.read_text())["rehearsed_at"]
    # the plan's rehearsal line: where and when, then each table it blocked (other tables first when the
    # sampler also caught the earlier migrations' brief locks, as it does on a slower machine)
    quoted = re.search(rf"rehearsal: rehearsed {re.escape(rehearsed_at)} on 127\.0\.0\.1/{staging.name}: ([^']*)", flat)
    assert quoted, flat[-3000:]
    assert re.search(r"(^|; )reads and writes of public\.orders blocked [0-9.]+ s", quoted[1]), quoted[0]
    assert f"measured by the rehearsal of {rehearsed_at}" in flat  # the estimate
    assert migrate_report["prisma_durations"]["migrate_deploy"] is not None
    assert migrate_report["tables_before"]["products"] == 2
    assert migrate_report["tables_after"]["products"] == 2
    assert staging.query("SELECT count(*) FROM products") == [(2,)]
    # production untouched
    assert target.table_digest() == before
    assert target.applied() == MIGRATIONS[:2]
    assert_no_secret(rehearsal, target)


def test_rollback_gate_refuses_a_wrong_answer(target):
    snapshot_then_deploy(target)
    digest = target.table_digest()
    run = target.run({"confirm": "dixis-prod-ok"}, playbook="rollback.yml")
    assert run.rc != 0
    assert "RESTORE PLAN" in run.stdout
    assert MIGRATIONS[4] in run.stdout  # the migrations the restore would lose
    assert "not the confirmation phrase" in run.report["message"]
    assert run.report["next_step"].startswith("Nothing was changed.")
    assert target.table_digest() == digest
    assert len(target.snapshots()) == 1  # no safety snapshot either
    assert no_advisory_locks(target.db)


def test_rollback_keeps_extensions_and_refuses_outside_dependents(target, pg_cluster):
    target.db.execute("CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public")
    target.db.execute("ALTER TABLE producers ADD COLUMN token text DEFAULT encode(gen_random_bytes(4), 'hex')")
    target.db.execute("ALTER TABLE producers OWNER TO app")
    before = target.table_digest()
    snapshot_then_deploy(target)
    run = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert run.rc == 0, run.report.get("message")
    assert target.table_digest() == before
    assert target.db.query("SELECT extname FROM pg_extension WHERE extname = 'pgcrypto'") == [("pgcrypto",)]

    target.db.execute(
        "CREATE SCHEMA reporting; CREATE VIEW reporting.product_names AS SELECT name FROM public.products"
    )
    run = target.run({"confirm": PHRASE}, playbook="rollback.yml")
    assert run.rc != 0
    assert "reporting.product_names" in run.report["message"]
    assert "nothing was changed" in run.report["message"]
    assert target.db.query("SELECT count(*) FROM reporting.product_names") == [(2,)]
