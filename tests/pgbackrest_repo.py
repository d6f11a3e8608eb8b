"""A throwaway PostgreSQL cluster that archives its WAL into a pgBackRest repository of its own (issue 20),
for the restore point's round trip (tests/integration/test_restore_point.py) and its benchmark
(bench/restore_point.py). Debian's pgbackrest package (make setup); everything lives in the cluster's
temporary folder and runs as the server's OS user, whose socket connections are trusted (peer)."""

from __future__ import annotations

import json
import os
import subprocess

from pgcluster import PG_BIN, PgCluster

STANZA = "main"


class ArchivedCluster:
    """``start()`` initialises the cluster with archive_mode=on, creates the stanza, checks it and takes a
    full backup (``backup=False`` leaves that to the caller)."""

    def __init__(self, backup: bool = True):
        self.cluster = PgCluster(hba_lines=("local all postgres peer",))
        self.conf = self.cluster.base / "pgbackrest.conf"
        self.backup = backup
        self.cluster.conf_lines = (
            "archive_mode = on",
            f"archive_command = 'pgbackrest --config={self.conf} --stanza={STANZA} archive-push %p'",
        )

    def start(self) -> ArchivedCluster:
        c = self.cluster.start()
        for name in ("repo", "log", "lock", "spool"):
            (c.base / name).mkdir()
            subprocess.run(["chown", "postgres:postgres", str(c.base / name)], check=True)
        self.conf.write_text(
            "[global]\n"
            f"repo1-path={c.base / 'repo'}\nlog-path={c.base / 'log'}\nlock-path={c.base / 'lock'}\n"
            f"spool-path={c.base / 'spool'}\nlog-level-console=warn\nlog-level-file=off\nstart-fast=y\n"
            "compress-type=none\nprocess-max=2\n"
            f"[{STANZA}]\npg1-path={c.data_dir}\npg1-port={c.port}\npg1-socket-path={c.socket_dir}\npg1-user=postgres\n"
        )
        os.chmod(self.conf, 0o644)
        self.pgbackrest("stanza-create")
        self.pgbackrest("check")
        if self.backup:
            self.pgbackrest("--type=full", "backup")
        return self

    def stop(self) -> None:
        """Stop the server and delete everything, the repository included (also after a failed start)."""
        self.cluster.stop()

    @property
    def command(self) -> list[str]:
        """pgBackRest as the server's OS user, with this repository's configuration."""
        return ["runuser", "-u", "postgres", "--", "pgbackrest", f"--config={self.conf}"]

    def pgbackrest(self, *args: str) -> str:
        proc = subprocess.run(
            [*self.command, f"--stanza={STANZA}", *args], capture_output=True, text=True, timeout=3600
        )
        if proc.returncode != 0:
            raise RuntimeError(f"pgbackrest {' '.join(args)} failed: {proc.stderr.strip()[-500:]}")
        return proc.stdout

    def pg_ctl(self, *args: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.cluster.data_dir), *args]

    @property
    def stop_command(self) -> list[str]:
        return self.pg_ctl("-m", "fast", "-w", "stop")

    @property
    def start_command(self) -> list[str]:
        c = self.cluster
        return self.pg_ctl("-l", str(c.base / "server.log"), "-w", "-t", "300", "-o", c._server_options(), "start")

    def variables(self) -> dict:
        """What an inventory sets for backup_method=restore_point with pgBackRest on the database host."""
        return {
            "backup_method": "restore_point",
            "pgbackrest_stanza": STANZA,
            "pgbackrest_host": "localhost",  # the database host; the pgBackRest steps are delegated to it
            "pgbackrest_command": self.command,
            "pg_stop_command": self.stop_command,
            "pg_start_command": self.start_command,
        }

    def archiver(self) -> dict:
        out = self.cluster.psql(
            "SELECT row_to_json(a) FROM (SELECT last_archived_wal, failed_count,"
            " coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false) AS failing"
            " FROM pg_stat_archiver) a"
        )
        return json.loads(out)

    def grant_restore_points(self, database: str, role: str = "app") -> None:
        """What a DBA grants the migration's role (per database: functions are granted where they are)."""
        self.cluster.psql(
            f"GRANT EXECUTE ON FUNCTION pg_create_restore_point(text), pg_switch_wal() TO {role}", dbname=database
        )
