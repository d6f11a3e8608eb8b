"""backup_method=restore_point with pgBackRest, for real (issue 20): a throwaway cluster archiving its WAL into a
local pgBackRest repository with a full backup; a broken archive_command refused before the gate; a migration whose
snapshot is a named restore point; then rollback.yml restores the whole cluster to it (stop, pgbackrest restore
--delta to the point, start, promotion) and every table and _prisma_migrations are as they were at the point."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest
from ansible_run import assert_result_keys, run_tasks
from pgcluster import PG_BIN, PgCluster, wait_until
from playbook_target import PHRASE, assert_no_secret, make_target
from prismaapp import MIGRATIONS

STANZA = "main"


class Archived:
    """A cluster whose archive_command pushes to a pgBackRest repository in the cluster's own folder."""

    def __init__(self):
        self.conf = None
        self.cluster = PgCluster(hba_lines=("local all postgres peer",))
        base = self.cluster.base
        self.conf = base / "pgbackrest.conf"
        self.cluster.conf_lines = (
            "archive_mode = on",
            f"archive_command = 'pgbackrest --config={self.conf} --stanza={STANZA} archive-push %p'",
        )

    def start(self):
        c = self.cluster.start()
        for name in ("repo", "log", "lock", "spool"):
            (c.base / name).mkdir()
            subprocess.run(["chown", "postgres:postgres", str(c.base / name)], check=True)
        self.conf.write_text(
            "[global]\n"
            f"repo1-path={c.base / 'repo'}\nlog-path={c.base / 'log'}\nlock-path={c.base / 'lock'}\n"
            f"spool-path={c.base / 'spool'}\nlog-level-console=warn\nlog-level-file=off\nstart-fast=y\n"
            "compress-type=none\n"
            f"[{STANZA}]\npg1-path={c.data_dir}\npg1-port={c.port}\npg1-socket-path={c.socket_dir}\npg1-user=postgres\n"
        )
        os.chmod(self.conf, 0o644)
        self.pgbackrest("stanza-create")
        self.pgbackrest("check")
        self.pgbackrest("--type=full", "backup")
        return self

    @property
    def command(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={self.conf}"]

    def pgbackrest(self, *args: str) -> str:
        proc = subprocess.run([*self.command, f"--stanza={STANZA}", *args], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout

    def variables(self) -> dict:
        c = self.cluster
        pg_ctl = ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(c.data_dir)]
        return {
            "backup_method": "restore_point",
            "pgbackrest_stanza": STANZA,
            "pgbackrest_host": "localhost",  # the database host; the pgBackRest steps are delegated to it
            "pgbackrest_command": self.command,
            "pg_stop_command": [*pg_ctl, "-m", "fast", "-w", "stop"],
            "pg_start_command": [
                *pg_ctl,
                "-l",
                str(c.base / "server.log"),
                "-w",
                "-t",
                "120",
                "-o",
                c._server_options(),
                "start",
            ],  # fmt: skip
        }

    def archiver(self) -> dict:
        out = self.cluster.psql(
            "SELECT row_to_json(a) FROM (SELECT last_archived_wal, failed_count,"
            " coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) AS failing"
            " FROM pg_stat_archiver) a"
        )
        return json.loads(out)


@pytest.fixture(scope="module")
def archived():
    cluster = Archived()
    try:
        yield cluster.start()
    finally:
        cluster.cluster.stop()


@pytest.fixture
def target(tmp_path, archived):
    db = archived.cluster.create_database()
    archived.cluster.psql(  # per database: what a DBA grants the migration's role for restore points
        "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO app",
        dbname=db.name,
    )
    return make_target(tmp_path, db)


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
    assert re.search(r"snapshot: restore point prisma-<run id> on the WAL archive \(timeline \d+\)", text), text[-4000:]
    assert f"pgBackRest stanza {STANZA} on localhost: ok, 1 full backup(s)" in text
    assert "every write after it to" in text
    assert other.name in text
    snapshot = run.report["snapshot"]
    assert snapshot["method"] == "restore_point"
    assert snapshot["restore_point"].startswith("prisma-")
    assert snapshot["restore_set"]["type"] == "full"
    assert float(snapshot["duration_s"]) < time.monotonic() - started
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


def test_the_modules_success_paths_return_their_documented_keys(tmp_path, archived):
    db = archived.cluster.create_database()
    archived.cluster.psql(
        "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO app", dbname=db.name
    )
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
