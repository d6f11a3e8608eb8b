"""Benchmark: a fleet rollout of N tenant databases, one at a time vs batches in parallel.

Builds N tenant databases (fixture schema at migration 2 of 5, sample rows) in
one throwaway cluster, then times migrate.yml on fresh fleets:

  serial    -e rollout_batch_size=1 --forks 1   (one target after the other)
  parallel  -e rollout_batch_size=B --forks B   (the canary, then batches of B)

and prints the wall times and the speed-up as its last line. Appends nothing:
the figure goes into the README and the runbook by hand.

    .venv/bin/python bench/fleet_rollout.py [--targets 8] [--forks 4]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fleet import Fleet  # noqa: E402
from pgcluster import PgCluster  # noqa: E402


def rollout(cluster: PgCluster, work: Path, targets: int, batch: int) -> float:
    fleet = Fleet(cluster, work, size=targets)
    try:
        run = fleet.run({"rollout_batch_size": batch}, forks=batch)
        if run.rc != 0 or (run.rollout or {}).get("counts") != {"migrated": targets}:
            sys.exit(f"bench: the rollout with batches of {batch} did not migrate every target:\n{run.stdout[-3000:]}")
        return run.seconds
    finally:
        for db in fleet.databases.values():
            cluster.drop_database(db.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=8, help="tenant databases (default 8)")
    parser.add_argument("--forks", type=int, default=4, help="parallel targets per batch (default 4)")
    args = parser.parse_args()
    if args.targets < 2 or args.forks < 2:
        parser.error("--targets and --forks must be 2 or more")
    with PgCluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        serial = rollout(cluster, Path(tmp) / "serial", args.targets, 1)
        print(f"bench: {args.targets} targets one at a time: {serial:.1f} s", flush=True)
        parallel = rollout(cluster, Path(tmp) / "parallel", args.targets, args.forks)
        print(f"bench: {args.targets} targets, canary then batches of {args.forks}: {parallel:.1f} s", flush=True)
    print(f"machine: {os.cpu_count()} cores; speed-up serial/parallel = {serial / parallel:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
