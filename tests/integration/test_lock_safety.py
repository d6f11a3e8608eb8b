"""Lock-safe execution (issue 19): the deploy never queues the application behind a blocker.

- an idle-in-transaction session holding a lock on a migrated table makes the preflight refuse,
  naming its pid, with its query's literals removed, nothing changed;
- ``wait_for_blockers`` goes on when the blocker ends inside the wait;
- the preflight says which mechanism brings ``lock_timeout`` to the migration's session: the URL's
  ``options`` (which the stand-in engine, like Prisma's native engine, is the only way to reach),
  the role's settings (``pg_db_role_setting``), or none - refused then;
- a lock timeout of a one-statement migration is marked rolled back and retried, and succeeds
  once the blocker ends: the history shows the rolled-back attempt and the applied one (Prisma 7
  only: the Prisma 6 fixture's engine stub cannot serve ``migrate resolve``, which a real 6.x
  install's native engine does).
"""

from __future__ import annotations

import json
import threading
import time

import pytest
from ansible_run import run_tasks
from pgcluster import wait_until
from playbook_target import PHRASE, make_target, no_advisory_locks
from prismaapp import MIGRATIONS, offline_env

NOTE = "20240301090000_orders_note"
NOTE_SQL = 'ALTER TABLE "orders" ADD COLUMN "note" TEXT;\n'


@pytest.fixture
def target(tmp_path, database):
    return make_target(tmp_path, database)


def hold_lock(db, sql: str):
    """An application session (the app's role) that runs ``sql`` in a transaction and stays idle in it;
    returns (connection, pid)."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=db.cluster.port, dbname=db.name, user=db.user, password=db.password)
    cur = conn.cursor()
    cur.execute("SET application_name = 'report-job'; SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute(sql)  # the session's last query: what the refusal shows, without its literals
    return conn, pid


@pytest.mark.prisma6
def test_an_idle_transaction_holding_a_lock_on_a_migrated_table_is_refused_with_its_pid(target):
    before = target.table_digest()
    conn, pid = hold_lock(target.db, "BEGIN; UPDATE products SET name = 'Secret Honey' WHERE id = 1")
    try:
        run = target.run({"confirm": PHRASE})
    finally:
        conn.rollback()
        conn.close()
    assert run.rc != 0
    flat = " ".join(run.stdout.split())
    assert f"pid {pid} (report-job" in flat, flat[-3000:]
    assert "idle in transaction" in flat
    assert "holds ROW EXCLUSIVE on public.products" in flat
    assert "UPDATE products SET name = ? WHERE id = ?" in flat  # literals removed
    assert "Secret Honey" not in run.stdout + run.stderr + str(run.reports)
    assert "wait_for_blockers" in flat
    assert target.applied() == MIGRATIONS[:2]
    assert target.snapshots() == []  # refused before the gate: nothing was changed
    assert target.table_digest() == before
    assert no_advisory_locks(target.db)
    safety = run.report["lock_safety"]
    assert len(safety["blockers"]) == 1
    assert f"pid {pid} " in safety["blockers"][0]
    assert safety["timeouts"]["mechanism"] == "url_options"


def test_wait_for_blockers_goes_on_when_the_blocker_ends_inside_the_wait(target):
    conn, pid = hold_lock(target.db, "BEGIN; SELECT * FROM orders FOR UPDATE")
    proc = target.start({"confirm": PHRASE, "wait_for_blockers": 60})
    watcher = target.db.connect()
    watcher.autocommit = True
    seen = watcher.cursor()

    def checking() -> bool:  # the preflight's check is reading (it reads every second while it waits)
        seen.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'prisma-lock-check'")
        return seen.fetchone()[0] > 0

    try:
        assert wait_until(checking, timeout=240, interval=0.01), "the preflight's blocker check never ran"
        time.sleep(2.5)  # a few more reads see the blocker, then it ends inside the wait
    finally:
        conn.rollback()
        conn.close()
        watcher.close()
    output = proc.stdout.read()
    assert proc.wait(timeout=300) == 0, output[-3000:]
    assert target.applied() == MIGRATIONS
    [report] = [json.loads(p.read_text()) for p in target.report_dir.glob("*.json")]
    safety = report["lock_safety"]
    assert safety["blockers"] == []
    assert 1 <= safety["waited_s"] < 60, safety


def test_no_mechanism_for_lock_timeout_is_refused_and_a_migration_role_setting_is_one(target, tmp_path):
    """A pooled URL (pgbouncer=true) gets no startup options: without a role setting the preflight
    refuses; ALTER ROLE ... IN DATABASE ... SET lock_timeout makes it go, named as the mechanism."""
    pooled = target.db.url() + "&pgbouncer=true"
    run = target.run({"confirm": PHRASE, "database_url": pooled})
    assert run.rc != 0
    flat = " ".join(run.stdout.split())
    assert "No lock_timeout would reach the migration's session" in flat, flat[-2000:]
    assert "pgbouncer=true" in flat
    assert target.applied() == MIGRATIONS[:2]
    assert target.snapshots() == []

    role = target.db.user
    target.db.cluster.psql(f"ALTER ROLE {role} IN DATABASE {target.db.name} SET lock_timeout = '3s'")
    run = target.run({"confirm": PHRASE, "database_url": pooled, "migration_role": role}, check=True)
    assert run.rc == 0, run.stdout[-3000:]
    flat = " ".join(run.stdout.split())
    assert "lock waits: lock_timeout=3s, statement_timeout=0 by role_setting" in flat, flat[-3000:]
    assert f"lock_timeout=3s ({role} in {target.db.name})" in flat
    assert "blockers: none on public.order_items, public.orders, public.products" in flat


def deploy_task(target, **options) -> dict:
    return {
        "name": "deploy",
        "prisma_command": {
            "subcommand": "migrate_deploy",
            "project_dir": str(target.app.path),
            "environment": offline_env(target.app.path),
            "database_url": target.db.url(),
            "lock_timeout": "1s",
            **options,
        },
        "ignore_errors": True,
    }


@pytest.mark.prisma6
def test_the_lock_timeout_reaches_the_engine_and_the_deploy_gives_up_its_wait(target, tmp_path):
    """A blocker that appears after the checks (here: no check): the migration's session waits
    lock_timeout, not until the blocker ends - the setting reached the engine in the URL alone (the
    stand-in engine and the Prisma 6 fixture's adapter read no PGOPTIONS, as Prisma's native engine)."""
    target.app.add_migration(NOTE, NOTE_SQL)
    conn, _pid = hold_lock(target.db, "BEGIN; SELECT count(*) FROM orders")
    try:
        run = run_tasks(tmp_path, [deploy_task(target, lock_retries=0, retry_safe=[NOTE])])
        still_blocked = target.db.query("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'report-job'")
    finally:
        conn.rollback()
        conn.close()
    deploy = run["deploy"]
    assert deploy["failed"]
    assert still_blocked == [(1,)]  # the deploy ended while the blocker was still there
    [attempt] = deploy["attempts"]
    assert attempt["failed_migration"] == NOTE
    assert attempt["lock_timeout"] is True
    assert "lock timeout" in deploy["msg"]
    assert target.applied() == MIGRATIONS  # the migrations before it applied; the one that waited did not
    assert target.db.query(
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'orders' AND column_name = 'note'"
    ) == [(0,)]


def test_a_lock_timeout_of_a_one_statement_migration_is_retried_after_the_blocker_ends(target, tmp_path):
    target.app.add_migration(NOTE, NOTE_SQL)
    failed = (
        "SELECT count(*) FROM _prisma_migrations WHERE migration_name = %s AND finished_at IS NULL"
        " AND rolled_back_at IS NULL AND logs IS NOT NULL"  # recorded failed (the row exists from its start)
    )
    conn, _pid = hold_lock(target.db, "BEGIN; SELECT count(*) FROM orders")  # ACCESS SHARE: the ALTER waits

    def end_blocker_after_the_first_failure():
        wait_until(lambda: target.db.query(failed, (NOTE,)) == [(1,)], timeout=120, interval=0.1)
        conn.rollback()
        conn.close()

    ender = threading.Thread(target=end_blocker_after_the_first_failure)
    ender.start()
    run = run_tasks(tmp_path, [deploy_task(target, lock_retries=3, retry_safe=[NOTE], retry_backoff=0.5)])
    ender.join()
    deploy = run["deploy"]
    assert not deploy.get("failed"), deploy.get("msg")
    attempts = deploy["attempts"]
    assert len(attempts) >= 2, attempts
    assert attempts[0]["result"] == "failed"
    assert attempts[0]["failed_migration"] == NOTE
    assert attempts[0]["lock_timeout"] is True
    assert attempts[0]["resolved_rolled_back"] is True
    assert attempts[-1]["result"] != "failed"
    rows = target.db.query(
        "SELECT rolled_back_at IS NOT NULL, finished_at IS NOT NULL FROM _prisma_migrations"
        " WHERE migration_name = %s ORDER BY started_at",
        (NOTE,),
    )
    assert rows[0] == (True, False), rows  # the rolled-back attempt
    assert rows[-1] == (False, True), rows  # then the applied one
    assert target.applied() == [*MIGRATIONS, NOTE]
    assert deploy["application_name"] == "prisma-migrate-deploy"
