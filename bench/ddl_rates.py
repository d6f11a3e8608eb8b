"""Benchmark and calibration: how fast this machine's PostgreSQL builds an index, rewrites a table and
scans it to validate a constraint, per byte of table (`make bench-ddl`).

The gate's estimate of how long a blocking statement holds its lock (plugins/module_utils/ddl_estimate.py)
is the table's live size divided by these rates. This script measures the three kinds of work on three
table sizes in a throwaway cluster, writes the rates (total bytes / total seconds of the three sizes)
into plugins/action/ddl_rates.json, which prisma_migration_plan reads, and prints, for each size, the
estimate the rates give against the duration measured, and the error. An inventory's `ddl_rates`
overrides the file (a production server is not this machine: calibrate there, or measure a rehearsal).

    python bench/ddl_rates.py [--rows 250000,500000,1000000] [--no-write]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "plugins" / "module_utils"))

from ddl_estimate import RATE_KEYS  # noqa: E402
from pgcluster import PgCluster  # noqa: E402

OUT = ROOT / "plugins" / "action" / "ddl_rates.json"

# Each kind of work: the statement, and the bytes it works through (as ddl_estimate counts them).
WORK = {
    "index_build": ("CREATE INDEX bench_a ON bench (a)", "table"),
    "full_rewrite": ("ALTER TABLE bench ALTER COLUMN a TYPE bigint", "table+indexes"),
    "full_scan": ("ALTER TABLE bench ADD CONSTRAINT bench_b CHECK (b IS NOT NULL)", "table"),
}


def measure(db, rows: int) -> dict:
    db.execute("DROP TABLE IF EXISTS bench")
    db.execute(
        "CREATE TABLE bench (id bigint PRIMARY KEY, a int, b text, c timestamptz);"
        f"INSERT INTO bench SELECT g, (g::bigint * 7919) % 1000003, md5(g::text), now() FROM generate_series(1, {rows}) g;"
        "ANALYZE bench"
    )
    out = {}
    for kind in RATE_KEYS:
        sql, counted = WORK[kind]
        table, indexes = db.query("SELECT pg_table_size('bench'), pg_indexes_size('bench')")[0]
        size = table + (indexes if counted == "table+indexes" else 0)
        started = time.monotonic()
        db.execute(sql)
        out[kind] = {"bytes": size, "seconds": time.monotonic() - started}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="250000,500000,1000000", help="table sizes in rows, comma-separated")
    parser.add_argument("--no-write", action="store_true", help="print only, do not write the calibration file")
    args = parser.parse_args()
    sizes = [int(x) for x in args.rows.split(",")]
    with PgCluster() as cluster:
        db = cluster.create_database()
        results = {rows: measure(db, rows) for rows in sizes}
    rates = {
        kind: sum(r[kind]["bytes"] for r in results.values()) / sum(r[kind]["seconds"] for r in results.values())
        for kind in RATE_KEYS
    }
    print(f"{'work':<13} {'rows':>9} {'MB':>7} {'measured s':>11} {'estimated s':>12} {'error':>7}")
    worst = 0.0
    for rows, result in results.items():
        for kind in RATE_KEYS:
            measured = result[kind]["seconds"]
            estimated = result[kind]["bytes"] / rates[kind]
            error = (estimated - measured) / measured
            worst = max(worst, abs(error))
            print(
                f"{kind:<13} {rows:>9} {result[kind]['bytes'] / 1e6:>7.1f} {measured:>11.2f} {estimated:>12.2f}"
                f" {error:>+7.0%}"
            )
    for kind in RATE_KEYS:
        print(f"rate {kind}: {rates[kind] / 1e6:.1f} MB/s")
    print(f"largest estimate error: {worst:.0%}")
    if not args.no_write:
        data = {
            "rates": {k: round(v) for k, v in rates.items()},
            "measured_at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),  # noqa: UP017
            "machine": f"{platform.node()} ({os.cpu_count()} cores), PostgreSQL of tests/pgcluster.py",
            "sizes_rows": sizes,
        }
        OUT.write_text(json.dumps(data, indent=2) + "\n")
        print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
