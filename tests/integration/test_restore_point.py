"""backup_method=restore_point with pgBackRest, for real (issue 20): a throwaway cluster archiving its WAL into a
local pgBackRest repository with a full backup; a broken archive_command refused before the gate; a migration whose
snapshot is a named restore point; then rollback.yml restores the whole cluster to it (stop, pgbackrest restore
--delta to the point, start, promotion) and every table and _prisma_migrations are as they were at the point."""

from __future__ import annotations

import json
import re
import time

import pytest
from ansible_run import assert_result_keys, run_tasks
from pgbackrest_repo import STANZA, ArchivedCluster
from pgcluster import wait_until
from playbook_target import PHRASE, assert_no_secret, make_target
from prismaapp import MIGRATIONS


@pytest.fixture(scope="module")
def archived():
    archived = ArchivedCluster()
    try:
        yield archived.start()
    finally:
        archived.stop()


@pytest.fixture
def target(tmp_path, archived):
    target = make_target(tmp_path, archived.cluster.create_database())
    archived.grant_restore_points(target.db.name)  # per database: after make_target recreated it
    return target


def test_restore_point_round_trip_and_a_broken_archive_refused_before_the_gate(target, archived):
    cluster = archived.cluster
    variables = archived.variables()
    before = target.table_digest()
    other = cluster.create_database()  # another database of the cluster: a point-in-time restore rewinds it too
    other.execute("CREATE TABLE notes (id int); INSERT INTO notes VALUES (1)")

    # a broken archive_command: the preflight refuses before the gate, nothing changes
    cluster.psql("ALTER SYSTEM SET archive_command = '/bin/false'")
    cluster.psql("SELECT pg_reload_conf()")
    cluster.psql("CREATE TABLE IF NOT EXISTS wal_filler AS SELECT 1 AS x; SELECT pg_switch_wal()")
    assert wait_until(lambda: archived.archiver()["failing"], timeout=30)
    run = target.run({**variables, "confirm": PHRASE})
    assert run.rc != 0
    message = run.report["message"]
    assert "the archiver is failing" in message, message
    assert "Nothing was changed." in message
    assert "Type the confirmation phrase" not in run.stdout
    assert "PLAN for" not in run.stdout
    assert target.applied() == MIGRATIONS[:2]
    assert not target.backup_dir.exists() or not list(target.backup_dir.glob("*.restore_point*"))
    cluster.psql("ALTER SYSTEM RESET archive_command")
    cluster.psql("SELECT pg_reload_conf()")
    assert wait_until(lambda: not archived.archiver()["failing"], timeout=60)

    # the migration: its snapshot is a restore point, proven archived and held by the repository
    started = time.monotonic()
    run = target.run({**variables, "confirm": PHRASE})
    assert run.rc == 0, run.stdout[-4000:]
    assert target.applied() == MIGRATIONS
    text = " ".join(run.stdout.split())
    assert re.search(r"snapshot: restore point prisma-<run id>-<hex> on the WAL archive \(timeline \d+\)", text), text[
        -4000:
    ]
    assert f"pgBackRest stanza {STANZA} on localhost: ok, 1 full backup(s)" in text
    assert "every write after it to" in text
    assert other.name in text
    snapshot = run.report["snapshot"]
    assert snapshot["method"] == "restore_point"
    assert snapshot["restore_point"].startswith("prisma-")
    assert snapshot["restore_set"]["type"] == "full"
    assert float(snapshot["duration_s"]) < time.monotonic() - started
    markdown = sorted(target.report_dir.glob("*-localhost.md"))[-1].read_text()
    assert f"Restore point: `{snapshot['restore_point']}`" in markdown
    [record] = target.backup_dir.glob("*.restore_point")
    manifest = json.loads((record.parent / (record.name + ".manifest.json")).read_text())
    assert manifest["method"] == "restore_point"
    assert manifest["purpose"] == "pre_migration"
    assert manifest["applied_migrations"] == MIGRATIONS[:2]
    assert manifest["restore_point"] == snapshot["restore_point"]
    assert other.name in manifest["databases"]
    timeline = manifest["timeline"]

    # writes after the point, in this database and in another one of the cluster: the restore loses both
    target.db.execute("INSERT INTO producers (name, email, region) VALUES ('Late', 'late@example.gr', 'Naxos')")
    other.execute("INSERT INTO notes VALUES (2)")

    run = target.run({**variables, "confirm": PHRASE}, playbook="rollback.yml")
    assert run.rc == 0, run.stdout[-4000:]
    text = " ".join(run.stdout.split())
    assert f"restore point {snapshot['restore_point']}" in text
    assert "WHOLE CLUSTER: a point-in-time restore rewinds every database of the cluster" in text
    assert other.name in text
    assert target.applied() == MIGRATIONS[:2]
    assert target.table_digest() == before  # every table as at the point
    assert other.query("SELECT id FROM notes ORDER BY id") == [(1,)]  # the other database rewound too
    [(now_timeline,)] = target.db.query("SELECT timeline_id FROM pg_control_checkpoint()")
    assert now_timeline > timeline
    report = run.report
    assert report["result"] == "restored", report
    safety = [
        json.loads(p.read_text())
        for p in target.backup_dir.glob("*.restore_point.manifest.json")
        if json.loads(p.read_text())["purpose"] == "safety"
    ]
    assert len(safety) == 1
    assert safety[0]["timeline"] == timeline
    assert_no_secret(run, target)


def test_without_pgbackrest_the_point_is_made_and_rollback_prints_the_procedure(target, archived):
    # inputs refused in one line before anything is read
    run = target.run({"confirm": PHRASE, "backup_method": "snapshot"})
    assert run.rc != 0
    assert "backup_method is 'snapshot': give pg_dump" in run.report["message"]
    run = target.run({"confirm": PHRASE, "backup_method": "restore_point"})
    assert run.rc != 0
    assert "backup_method=restore_point needs the archive it relies on" in run.report["message"]
    assert target.applied() == MIGRATIONS[:2]

    # another archive tool: the server's side is proven, the point made; the rollback prints the recovery settings
    variables = {"backup_method": "restore_point", "restore_point_base_backup": "wal-g base_000000010000000000000002"}
    run = target.run({**variables, "confirm": PHRASE})
    assert run.rc == 0, run.stdout[-3000:]
    assert target.applied() == MIGRATIONS
    assert "base backup (stated, not checked here): wal-g base_000000010000000000000002" in " ".join(run.stdout.split())
    point = run.report["snapshot"]["restore_point"]
    migrated = target.table_digest()
    run = target.run({**variables, "confirm": PHRASE}, playbook="rollback.yml")
    assert run.rc != 0
    message = run.report["message"]
    assert f"recovery_target_name = '{point}'" in message, message
    assert "restore the base backup wal-g base_000000010000000000000002" in message
    assert "Nothing was changed." in message
    assert "RESTORE PLAN" not in run.stdout
    assert target.applied() == MIGRATIONS
    assert target.table_digest() == migrated


def test_the_modules_success_paths_return_their_documented_keys(tmp_path, archived):
    db = archived.cluster.create_database()
    archived.grant_restore_points(db.name)
    url = db.url()
    run = run_tasks(
        tmp_path,
        [
            {"name": "archive", "prisma_archive_info": {"database_url": url}},
            {"name": "point", "register": "point",
             "prisma_restore_point": {"database_url": url, "dest_dir": str(tmp_path / "b"), "run_id": "k1"}},
            {"name": "stanza", "prisma_pgbackrest": {"stanza": STANZA, "command": archived.command,
                                                     "segment": "{{ point.manifest.segment }}"}},
        ],
    )  # fmt: skip
    assert run.rc == 0, run.stdout[-3000:]
    assert_result_keys("prisma_archive_info", run["archive"], failed=False)
    assert run["archive"]["state"]["system_identifier"].isdigit()  # the stanza is checked to back up this cluster
    assert run["archive"]["switched"]["segment"]
    assert_result_keys("prisma_restore_point", run["point"], failed=False)
    assert run["point"]["manifest"]["tables"] == {}
    assert_result_keys("prisma_pgbackrest", run["stanza"], failed=False)
    assert run["stanza"]["summary"]["full_backups"] >= 1
    assert db.password not in run.stdout
