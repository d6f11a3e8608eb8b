"""playbooks/migrate.yml end to end: real ansible-playbook, real Prisma, a real
PostgreSQL cluster started by the tests (issue #4)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
from pgcluster import wait_until
from playbook_target import PHRASE, Run, Target, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS, PrismaApp

# Also on Prisma 6.19.3 (@pytest.mark.prisma6): the migrate.yml tests whose assertions read what Prisma did or
# printed at deploy time (a clean deploy, a failed migration, the schema parameter, the lock timeout reaching
# the engine). What the project decides before or after Prisma runs (the gate, the checks, check mode, the
# audit, the secret, the run lock): Prisma 7 only, since it does not depend on the major.


@pytest.fixture
def target(tmp_path, database):
    return make_target(tmp_path, database)


def assert_nothing_changed(run: Run, target: Target):
    assert run.rc != 0
    assert target.applied() == MIGRATIONS[:2]
    assert target.snapshots() == []
    assert no_advisory_locks(target.db)
    assert run.report["result"] == "failed"
    assert run.report["next_step"].startswith("Nothing was changed.")
    assert_no_secret(run, target)


@pytest.mark.prisma6
def test_happy_path_then_nothing_pending(target):
    run = target.run({"confirm": PHRASE})
    assert run.rc == 0, run.stdout[-4000:]
    assert target.applied() == MIGRATIONS
    assert target.db.query("SELECT slug FROM products ORDER BY id") == [("thyme-honey-1",), ("pine-honey-2",)]
    report = run.report
    assert report["result"] == "migrated"
    assert report["applied"] == MIGRATIONS[2:]
    assert report["state_before"] == "pending"
    assert report["state_after"] == "up_to_date"
    assert report["started_at_local"].endswith(("+02:00", "+03:00"))  # Europe/Athens
    assert set(report["stages"]) >= {"preflight", "backup_snapshot", "prisma_migrate", "migration_validation"}
    durations = report["prisma_durations"]
    for command in ("preflight_migrate_status", "preflight_validate", "generate", "migrate_deploy", "migrate_status"):
        assert durations[command] > 0, command  # the validation's migrate status, too

    [snapshot] = target.snapshots()
    assert snapshot.stat().st_mode & 0o777 == 0o600
    assert target.backup_dir.stat().st_mode & 0o777 == 0o700
    assert snapshot.name.endswith(f"-{MIGRATIONS[1]}.dump")
    manifest = json.loads(Path(str(snapshot) + ".manifest.json").read_text())
    import hashlib

    assert manifest["sha256"] == hashlib.sha256(snapshot.read_bytes()).hexdigest() == report["snapshot"]["sha256"]
    assert manifest["applied_migrations"] == MIGRATIONS[:2]
    assert manifest["tables"]["products"] == 2
    listing = subprocess.run(["pg_restore", "--list", str(snapshot)], capture_output=True, text=True, check=True)
    assert "TABLE DATA public products" in listing.stdout
    assert no_advisory_locks(target.db)
    md = (target.report_dir / f"{report['run_id']}-localhost.md").read_text()
    assert "MIGRATED" in md
    assert str(snapshot) in md
    assert_no_secret(run, target)

    again = target.run()  # no confirm needed: nothing to change
    assert again.rc == 0, again.stdout[-3000:]
    assert again.report["result"] == "nothing_to_do"
    assert len(target.snapshots()) == 1
    recap = [ln for ln in again.stdout.splitlines() if ln.startswith("localhost ")][-1]
    # idempotent: the report is written, but it is the run's log, not a change
    assert "changed=0 " in recap, recap


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("DIXIS-PROD-NO", "not the confirmation phrase"),
        ("", "No confirmation"),
        (None, "No confirmation: there is no terminal"),
    ],
    ids=["wrong", "empty", "no-terminal"],
)
def test_gate_refusals_change_nothing(target, answer, message):
    """The phrase in lower case is refused as well: by the fleet's gate (test_fleet.py) and by molecule's
    staging containers (molecule/failure), each a full run; a third here would prove nothing more."""
    run = target.run({} if answer is None else {"confirm": answer})
    assert message in run.report["message"]
    assert_nothing_changed(run, target)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "No database URL"),
        ("", "No database URL"),
        ("not a url at all", "database_url: the database URL contains white space"),
        ("mysql://app:x@127.0.0.1/db", "scheme is 'mysql'"),
    ],
    ids=["missing", "empty", "garbage", "wrong-scheme"],
)
def test_bad_secret_changes_nothing(target, url, message):
    run = target.run({"confirm": PHRASE}, url=url, no_url=url is None)
    assert message in run.report["message"], run.report["message"]
    assert_nothing_changed(run, target)


def test_unreachable_server_and_wrong_password(target, pg_cluster):
    unreachable = target.db.url().replace(f":{pg_cluster.port}/", ":1/")
    run = target.run({"confirm": PHRASE}, url=unreachable)
    assert "cannot reach the database server at 127.0.0.1:1" in run.report["message"]
    assert_nothing_changed(run, target)

    run = target.run({"confirm": PHRASE}, url=target.db.url(password="wrong-password-42"))
    assert "authentication failed for user app" in run.report["message"]
    assert "wrong-password-42" not in run.stdout
    assert_nothing_changed(run, target)


def test_database_missing_is_refused_not_created(target, pg_cluster):
    """A typo in the database name: Prisma's migrate deploy creates that database, empty, and migrates it (the
    native engine, and Prisma 7 with any engine). The playbook refuses before the gate: nothing created,
    nothing migrated. Then Prisma alone, given the same URL, shows what the refusal prevented."""
    typo_name = f"{target.db.name}_typo"
    typo = target.db.url().replace(f"/{target.db.name}?", f"/{typo_name}?")
    exists = f"SELECT count(*) FROM pg_database WHERE datname = '{typo_name}'"
    run = target.run({"confirm": PHRASE}, url=typo)
    assert f"database {typo_name} does not exist" in run.report["message"]
    assert "MIGRATION PLAN" not in run.stdout  # stopped before the gate
    assert pg_cluster.psql(exists).strip() == "0"
    assert_nothing_changed(run, target)
    if target.app.major >= 7:
        bare = target.app.prisma("migrate", "deploy", database_url=typo)
        try:
            assert bare.rc == 0, bare.output
            assert f"PostgreSQL database {typo_name} created at 127.0.0.1:{pg_cluster.port}" in bare.output
            assert pg_cluster.psql(exists).strip() == "1"
        finally:
            pg_cluster.psql(f"DROP DATABASE IF EXISTS {typo_name}")


def test_check_mode_shows_the_plan_and_changes_nothing(target):
    run = target.run({"confirm": PHRASE}, check=True, args=["--diff"])
    assert run.rc == 0, run.stdout[-3000:]
    assert "MIGRATION PLAN for localhost" in run.stdout
    assert MIGRATIONS[2] in run.stdout
    # The whole plan: the index build of the release on its small table, its estimate and safe form, squawk
    flat = " ".join(run.stdout.split())
    assert "BLOCKING statements (" in flat
    assert "blocks writes of public.products (" in flat
    assert "for ~<1 s (index build at the rate of" in flat
    assert "safe form: CREATE INDEX CONCURRENTLY" in flat
    assert "require-concurrent-index-creation" in flat
    # --diff: each pending migration's SQL, under its file
    index_sql = (target.app.path / "prisma" / "migrations" / MIGRATIONS[3] / "migration.sql").read_text()
    statement = next(line for line in index_sql.splitlines() if line.startswith("CREATE"))
    assert f"{MIGRATIONS[3]}/migration.sql" in run.stdout
    assert statement in run.stdout
    assert "-- CreateIndex" in run.stdout  # the file as written, comments included (the plan shows statements only)
    assert target.applied() == MIGRATIONS[:2]
    assert target.snapshots() == []
    assert no_advisory_locks(target.db)


def test_destructive_migration_needs_allow_destructive(target):
    target.app.add_migration("20240301090000_drop_orders", 'DELETE FROM "order_items";\nDROP TABLE "orders" CASCADE;\n')
    run = target.run({"confirm": PHRASE})
    assert "-e allow_destructive=true" in run.report["message"]
    assert "20240301090000_drop_orders/migration.sql:1" in run.report["message"]
    flat = " ".join(run.stdout.split())  # the yaml callback folds long lines
    # What the parser read, and what squawk says, in the plan before the gate
    assert "all rows of public.order_items" in flat
    assert "table public.orders" in flat
    assert "squawk (" in flat
    assert "ban-drop-table" in flat
    assert_nothing_changed(run, target)

    run = target.run({"confirm": PHRASE, "allow_destructive": True})
    assert run.rc == 0, run.stdout[-3000:]
    assert target.applied() == [*MIGRATIONS, "20240301090000_drop_orders"]
    assert run.report["row_loss"] == []  # order_items and orders are excused: the SQL empties them


@pytest.mark.prisma6
def test_failing_migration_names_it_and_keeps_the_data(target):
    before = target.db.query("SELECT id, name, price_cents FROM products ORDER BY id")
    target.app.add_migration(
        "20240301090000_require_weight",
        'ALTER TABLE "products" ADD COLUMN "weight_grams" INTEGER;\n'
        'ALTER TABLE "products" ALTER COLUMN "weight_grams" SET NOT NULL;\n',
    )
    run = target.run({"confirm": PHRASE})
    assert run.rc != 0
    report = run.report
    assert report["result"] == "failed"
    assert report["failed_migration"] == "20240301090000_require_weight"
    [snapshot] = target.snapshots()
    assert str(snapshot) in report["next_step"]
    assert "playbooks/rollback.yml" in report["next_step"]
    assert "20240301090000_require_weight failed" in run.stdout
    assert target.db.query("SELECT id, name, price_cents FROM products ORDER BY id") == before
    assert no_advisory_locks(target.db)
    assert_no_secret(run, target)

    # The failed migration is now recorded: the next run stops in preflight.
    again = target.run({"confirm": PHRASE})
    assert again.rc != 0
    assert "failed migration(s) recorded in the database: 20240301090000_require_weight" in again.report["message"]
    assert len(target.snapshots()) == 1


def test_edited_applied_migration_stops_the_run(target):
    sql = target.app.migrations_dir / MIGRATIONS[1] / "migration.sql"
    sql.write_text(sql.read_text() + "\n-- edited after it was applied\n")
    run = target.run({"confirm": PHRASE})
    assert f"edited locally since they were applied: {MIGRATIONS[1]}" in run.report["message"]
    assert_nothing_changed(run, target)


@pytest.mark.prisma6
def test_schema_parameter_is_honoured(tmp_path, pg_cluster):
    db = pg_cluster.create_database()
    url = db.url().replace("?schema=public", "?schema=shop")
    old = PrismaApp.copy_to(tmp_path / "old")
    old.keep_only(2)
    assert old.prisma("migrate", "deploy", database_url=url).rc == 0
    db.execute("INSERT INTO shop.producers (name, email, region) VALUES ('A', 'a@example.gr', 'Crete')")
    t = Target(db, PrismaApp.copy_to(tmp_path / "app"), tmp_path)
    run = t.run({"confirm": PHRASE}, url=url)
    assert run.rc == 0, run.stdout[-3000:]
    assert db.query("SELECT count(*) FROM shop._prisma_migrations WHERE finished_at IS NOT NULL") == [(5,)]
    manifest = json.loads(Path(str(t.snapshots()[0]) + ".manifest.json").read_text())
    assert manifest["schema"] == "shop"
    assert manifest["tables"]["producers"] == 1


def test_two_runs_at_once_one_is_refused(target):
    """The second run starts while the first holds the run lock, with the run id of the first (as two runs
    started in the same second by one operator get: the id has one-second resolution), so its lock owner is
    the same string: it is refused all the same. The race of two acquisitions at the same instant is
    test_run_lock.py's, 20 pairs of each kind at the module level."""
    target.app.add_migration("20240301090000_slow", "SELECT pg_sleep(6);\n")
    same_second = {"confirm": PHRASE, "run_id": "20240301T090000Z"}
    first = target.start(same_second)
    try:
        assert target.wait_for_session("application_name LIKE 'prisma-run-lock%%'", timeout=60, proc=first)
        second = target.run(same_second)
        assert second.rc != 0
        assert "Another migration or rollback run holds" in second.report["message"]
        assert "prisma-run-lock" in second.report["message"]
    finally:
        out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out[-3000:]
    assert target.applied() == [*MIGRATIONS, "20240301090000_slow"]
    assert len(target.snapshots()) == 1
    assert no_advisory_locks(target.db)


def test_killed_run_leaves_no_stale_lock(target):
    target.app.add_migration("20240301090000_slow", "SELECT pg_sleep(2);\n")
    proc = target.start({"confirm": PHRASE}, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        assert target.wait_for_session("application_name LIKE 'prisma-run-lock%%'", timeout=60, proc=proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert wait_until(lambda: no_advisory_locks(target.db), timeout=15), "the run lock outlived the killed run"
    # Let a Prisma deploy that may have started finish before checking the state.
    wait_until(
        lambda: (
            target.db.query(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep%' AND pid <> pg_backend_pid()"
            )
            == [(0,)]
        ),
        timeout=30,
    )
    run = target.run({"confirm": PHRASE})
    assert run.rc == 0, run.report.get("message")
    assert target.applied() == [*MIGRATIONS, "20240301090000_slow"]


def test_validation_checks_and_the_data_loss_guard(target):
    """A failed read-only check fails the run after the deploy, naming the snapshot to restore."""
    checks = [
        {"name": "every product has a slug", "sql": "SELECT count(*) FROM products WHERE slug IS NULL", "expect": 0},
        {"name": "two producers", "sql": "SELECT count(*) FROM producers", "expect": 2},
    ]
    run = target.run({"confirm": PHRASE, "validation_sql_checks": checks})
    assert run.rc != 0
    report = run.report
    assert "Validation checks failed: two producers returned 1 (expected 2)" in report["message"]
    assert report["next_step"].startswith("The migrations were applied but validation failed.")
    assert "playbooks/rollback.yml" in report["next_step"]
    assert [c["ok"] for c in report["checks"]] == [True, False]
    assert report["state_after"] == "up_to_date"
    assert target.applied() == MIGRATIONS


def test_skipping_the_validation_by_tag_still_reads_the_state_after_the_deploy(target):
    run = target.run({"confirm": PHRASE}, args=["--skip-tags", "migration_validation"])
    assert run.rc == 0, run.stdout[-4000:]
    assert "migration_validation : " not in run.stdout
    assert run.report["state_after"] == "up_to_date"  # the Prisma stage ran migrate status itself
    assert run.report["prisma_durations"]["migrate_status"] > 0
    assert target.applied() == MIGRATIONS


def test_read_only_checks_cannot_write(target):
    checks = [{"name": "sneaky", "sql": "DELETE FROM order_items RETURNING 1", "expect": 1}]
    run = target.run({"confirm": PHRASE, "validation_sql_checks": checks})
    assert run.rc != 0
    assert "read-only transaction" in run.report["message"]
    assert target.db.query("SELECT count(*) FROM order_items") == [(1,)]
