"""Issue 16 A: the next step is decided from _prisma_migrations read after the deploy. Restore is
proposed only when the deploy may have changed the database, with what it costs and the fix-forward
alternative; when nothing was applied the report says so and proposes no restore."""

from __future__ import annotations

import json

import pytest
from playbook_target import PHRASE, make_target
from prismaapp import MIGRATIONS

# Also on Prisma 6.19.3: P1002 from the other deploy holding Prisma's lock (each major prints its own).

PRISMA_LOCK = 72707369  # the advisory lock prisma migrate deploy takes


@pytest.fixture
def target(tmp_path, database):
    return make_target(tmp_path, database)


@pytest.mark.prisma6
def test_another_deploy_holding_prismas_lock_says_nothing_was_migrated(target):
    """P1002 at deploy time (an app container running migrate deploy at start-up took Prisma's lock
    after the preflight): nothing was applied, so no restore is proposed."""
    holder = None
    proc = target.start({"confirm": PHRASE})
    try:
        # The gate is behind us once the run lock is held; the deploy has not started yet.
        assert target.wait_for_session("application_name LIKE 'prisma-run-lock%%'", timeout=120, proc=proc)
        holder = target.db.connect()
        holder.autocommit = True
        holder.cursor().execute("SELECT pg_advisory_lock(%s)", (PRISMA_LOCK,))
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
        if holder is not None:
            holder.close()
    assert proc.returncode != 0, out[-3000:]
    [report] = [json.loads(p.read_text()) for p in sorted(target.report_dir.glob("*-localhost.json"))][-1:]
    assert report["result"] == "failed"
    assert report["failed_stage"] == "Run prisma generate, then prisma migrate deploy", report["message"]
    # Which way the deploy learns of the holder depends on when the test takes the lock: the check under the
    # run lock sees it ("advisory lock"), or the deploy waits on it until Prisma's 10 s (P1002) or the
    # session's lock_timeout ("lock timeout", seen on a loaded machine) gives up. Nothing is migrated either way.
    assert any(s in report["message"] for s in ("P1002", "advisory lock", "lock timeout")), report["message"]
    assert report["next_step"].startswith("Nothing was migrated (_prisma_migrations shows no change)."), report[
        "next_step"
    ]
    assert "rollback.yml" not in report["next_step"]
    assert report["snapshot"]["path"] in report["next_step"]
    assert target.applied() == MIGRATIONS[:2]


def test_a_failed_migration_offers_fix_forward_and_the_cost_of_a_restore(target):
    """The failed migration is recorded in _prisma_migrations, whatever the engine left of its statements
    (the fixtures' adapter runs them one by one, so the first one stays; the native engine before 7.4 keeps
    none): the database may have changed, so both ways out are given, and what a restore loses."""
    target.app.add_migration(
        "20240301090000_half_applied", 'ALTER TABLE "orders" ADD COLUMN "note" TEXT;\nSELECT 1/0;\n'
    )
    run = target.run({"confirm": PHRASE})
    assert run.rc != 0
    step = run.report["next_step"]
    assert step.startswith("The database may be partly migrated: migration 20240301090000_half_applied failed"), step
    assert "prisma migrate resolve --rolled-back 20240301090000_half_applied" in step
    assert "playbooks/rollback.yml" in step
    assert run.report["snapshot"]["path"] in step
    assert "Restoring costs every write made since the snapshot was taken" in step
    assert "min ago" in step
    assert target.applied() == MIGRATIONS
