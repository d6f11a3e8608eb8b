"""Benchmark: how fast this machine snapshots and restores, per GB of database.

Fills a throwaway PostgreSQL 15 database with SIZE_MB of rows shaped like the
app's (text, integers, timestamps), then times what the playbooks do:
  snapshot  pg_dump -Fc -Z6, pg_restore --list, SHA-256 of the file
  restore   one transaction: DROP SCHEMA public CASCADE + pg_restore -f - | psql
and prints seconds and seconds per GB. The runbook's timeline comes from it.

    .venv/bin/python bench/snapshot_rates.py [SIZE_MB]   (default 512)
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pgcluster import PgCluster  # noqa: E402

BIN = "/usr/lib/postgresql/15/bin"


def timed(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


def main() -> int:
    size_mb = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    with PgCluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        db = cluster.create_database("bench")
        rows = size_mb * 7000  # about 150 bytes per row on disk, indexes included
        db.execute(
            "CREATE TABLE products (id serial PRIMARY KEY, producer_id int NOT NULL, name text NOT NULL,"
            " slug text NOT NULL, price_cents int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
        )
        db.execute(
            "INSERT INTO products (producer_id, name, slug, price_cents)"
            " SELECT g % 97, 'Product ' || g || ' ' || md5(g::text), 'product-' || g, g % 10000"
            f" FROM generate_series(1, {rows}) g"
        )
        db.execute("CREATE INDEX products_name_idx ON products (name)")
        db.execute("ANALYZE products")
        size = db.query("SELECT pg_database_size('bench')")[0][0]
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": cluster.superuser}
        env["PGPASSWORD"] = cluster.superuser_password
        dump = Path(tmp) / "bench.dump"

        def snapshot():
            subprocess.run([f"{BIN}/pg_dump", "-Fc", "-Z6", "-d", "bench", "-f", str(dump)], env=env, check=True)
            subprocess.run([f"{BIN}/pg_restore", "--list", str(dump)], env=env, check=True, stdout=subprocess.DEVNULL)
            hashlib.sha256(dump.read_bytes()).hexdigest()

        def restore():
            sql = subprocess.run(
                [f"{BIN}/pg_restore", "-f", "-", str(dump)], env=env, check=True, capture_output=True
            ).stdout
            script = (
                b"SET client_min_messages = warning;\nBEGIN;\nDROP SCHEMA public CASCADE;\nCREATE SCHEMA public;\n"
                + sql
                + b"\nCOMMIT;\n"
            )
            subprocess.run(
                [f"{BIN}/psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "bench", "-f", "-"],
                input=script,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )

        t_snap = timed(snapshot)
        dump_mb = dump.stat().st_size / 1e6
        t_restore = timed(restore)
        gb = size / 1e9
        print(f"machine: {platform.node()} {os.cpu_count()} cores, PostgreSQL 15, database {size / 1e6:.0f} MB")
        print(f"snapshot: {t_snap:.1f} s ({t_snap / gb:.0f} s per GB), dump file {dump_mb:.0f} MB")
        print(f"restore:  {t_restore:.1f} s ({t_restore / gb:.0f} s per GB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
