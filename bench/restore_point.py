"""Benchmark: the restore point next to pg_dump, on one database (issue 20).

On a throwaway cluster that archives its WAL into a pgBackRest repository of its own
(tests/pgbackrest_repo.py), fills a database of SIZE_MB (default 1024) shaped as in
bench/snapshot_rates.py, takes pgBackRest's full backup (the standing cost: the team's schedule, not
each migration's), then measures side by side in one run:

  snapshot  prisma_restore_point (the project's module: archive checked, the point made, its segment
            switched out and seen archived) and prisma_snapshot (pg_dump, format and compress auto)
  migration CREATE INDEX on the larger table (new files, WAL to replay)
  rollback  pg_restore --jobs 2 of the dump into a new database, and the point-in-time restore the
            playbook runs: the cluster stopped, pgbackrest restore --delta --type=name to the point,
            started, until the server promoted - with every table's row count checked against the point

and writes bench/results/<date>-restore-point-<machine>.md.

    .venv/bin/python bench/restore_point.py 1024      (make bench-snapshot runs it after snapshot_rates.py)
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))
sys.path.insert(0, str(ROOT / "bench"))
from pgbackrest_repo import STANZA, ArchivedCluster  # noqa: E402
from prisma_archive import check_stanza, restore_argv  # noqa: E402
from snapshot_rates import ansible_module, fill, publish, timed, timed_restore  # noqa: E402

MB = 1e6


def promoted(db) -> bool:
    """Whether the server accepts connections out of recovery (False while it starts or replays)."""
    import psycopg2

    try:
        return db.query("SELECT pg_is_in_recovery()")[0][0] is False
    except psycopg2.Error:
        return False


def counts(db) -> dict:
    return {t: db.query(f"SELECT count(*) FROM {t}")[0][0] for t in ("products", "events")}


def measure(size_mb: int, tmp: Path) -> dict:
    archived = ArchivedCluster(backup=False)
    try:
        return measure_on(archived.start(), size_mb, tmp)
    finally:
        archived.stop()


def measure_on(archived: ArchivedCluster, size_mb: int, tmp: Path) -> dict:
    cluster = archived.cluster
    db = cluster.create_database(f"bench{size_mb}")
    archived.grant_restore_points(db.name)
    t0 = time.monotonic()
    fill(db, size_mb)
    fill_s = time.monotonic() - t0
    size = db.query("SELECT pg_database_size(current_database())")[0][0]
    backup_s = timed([*archived.command, f"--stanza={STANZA}", "--type=full", "backup"])
    url = db.url(prisma=False)
    at_point = counts(db)

    t0 = time.monotonic()
    point = ansible_module("prisma_restore_point", {"dest_dir": str(tmp / "points"), "run_id": "bench"}, url)
    point_wall = time.monotonic() - t0
    t0 = time.monotonic()
    dump = ansible_module("prisma_snapshot", {"dest_dir": str(tmp / "dumps"), "format": "auto"}, url)
    dump_wall = time.monotonic() - t0

    db.execute("CREATE INDEX events_account ON events (account)")  # the migration: new files, WAL to replay

    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": cluster.superuser}
    env.update(PGPASSWORD=cluster.superuser_password)
    pg_restore_s = timed_restore(cluster, env, dump["path"], f"restored{size_mb}")

    manifest = point["manifest"]
    info = subprocess.run(
        [*archived.command, f"--stanza={STANZA}", "--output=json", "info"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    backup_set = check_stanza(info, STANZA, manifest["system_identifier"], None, manifest["lsn"], manifest["timeline"])
    t0 = time.monotonic()
    stop_s = timed(archived.stop_command)
    pitr_restore_s = timed(
        restore_argv(archived.command, STANZA, manifest["restore_point"], manifest["timeline"],
                     backup_set["restore_set"]["label"])
    )  # fmt: skip
    start_s = timed(archived.start_command)
    while not promoted(db):
        time.sleep(0.2)
    pitr_s = time.monotonic() - t0
    after = counts(db)
    index_gone = db.query("SELECT to_regclass('events_account') IS NULL")[0][0]
    if after != at_point or not index_gone:
        raise SystemExit(f"the point-in-time restore did not bring back the point: {after} vs {at_point}")
    return {
        "size_mb": size / MB,
        "fill_s": fill_s,
        "backup_s": backup_s,
        "backup_mb": backup_set["restore_set"]["size_bytes"] / MB,
        "point_s": point["duration_s"],
        "point_wall": point_wall,
        "archived_in_s": manifest["archived_in_s"],
        "counted_in_s": manifest["counted_in_s"],
        "dump_s": dump["duration_s"],
        "dump_wall": dump_wall,
        "dump_mb": dump["size_bytes"] / MB,
        "pg_restore_s": pg_restore_s,
        "pitr_s": pitr_s,
        "stop_s": stop_s,
        "pitr_restore_s": pitr_restore_s,
        "start_s": start_s,
    }


def report(r: dict, machine: str) -> str:
    return (
        f"# Benchmark: the restore point next to pg_dump — {datetime.date.today()}\n\n"
        f"Machine `{machine}`: {os.cpu_count()} cores; PostgreSQL 15 and pgBackRest 2.45 on the same host, the repository"
        " on the same disk, uncompressed. Command: `make bench-snapshot` (`bench/restore_point.py`).\n\n"
        f"Database {r['size_mb']:.0f} MB; pgBackRest full backup {r['backup_s']:.1f} s ({r['backup_mb']:.0f} MB) - the"
        " standing cost, on the team's schedule, not each migration's.\n\n"
        "| | snapshot (module's time) | wall, with Ansible | rollback to it |\n|---|---|---|---|\n"
        f"| `pg_dump` (auto) | {r['dump_s']:.1f} s, {r['dump_mb']:.0f} MB | {r['dump_wall']:.1f} s"
        f" | pg_restore --jobs 2: {r['pg_restore_s']:.1f} s (this schema only) |\n"
        f"| `restore_point` | {r['point_s']:.2f} s (row counts and the point {r['counted_in_s']:.2f} s, its segment archived"
        f" {r['archived_in_s']:.2f} s) | {r['point_wall']:.1f} s"
        f" | point-in-time restore: {r['pitr_s']:.1f} s (stop {r['stop_s']:.1f}, pgbackrest restore --delta"
        f" {r['pitr_restore_s']:.1f}, start and replay to the promotion {r['pitr_s'] - r['stop_s'] - r['pitr_restore_s']:.1f};"
        " the whole cluster, server down meanwhile) |\n\n"
        f"Snapshot: the restore point took {r['point_s'] / r['dump_s']:.2f} of pg_dump's time on this database. The point"
        " itself is one WAL record and copies nothing; what grows with the database is the manifest's exact row counts"
        f" (one count(*) per table, {r['counted_in_s']:.2f} s here), which the validation's row-count guard compares"
        " after the migration. Rollback: the point-in-time restore took"
        f" {r['pitr_s'] / r['pg_restore_s']:.2f} of pg_restore's time, for the whole cluster with the server down.\n"
    )


def main() -> int:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 1024
    with tempfile.TemporaryDirectory(prefix="bench-restore-point-") as tmp:
        r = measure(size_mb, Path(tmp))
    return publish("restore-point", report(r, platform.node()))


if __name__ == "__main__":
    raise SystemExit(main())
