"""Benchmark: sql_plan (PostgreSQL's own parser, pglast) on 20,000 statements (goal: under 2 s).

Run with `make bench-parser`. The input is what a large data migration looks
like: INSERTs with E'...' strings and quoted names holding quotes, dashes and
comment openers, ALTER TABLEs, CREATE INDEXes and a DO block every 500
statements. It reads 2,000 and 20,000 statements side by side (median of
runs) and prints the ratio: linear input, linear time (about 10). Exits 1 when
the 20,000-statement median is over the goal, so a regression is visible
without a timed unit test.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "module_utils"))

from sql_plan import plan_sql  # noqa: E402

GOAL_S = 2.0


def migration(statements: int) -> str:
    parts = []
    for i in range(statements):
        if i % 500 == 499:
            parts.append(f'DO $$ BEGIN UPDATE "it\'s--/*" SET "n" = {i} WHERE "id" = {i}; END $$;')
        elif i % 100 == 99:
            parts.append(f'CREATE INDEX "idx_{i}" ON "Order Items"("col_{i % 7}");')
        elif i % 50 == 49:
            parts.append(f'ALTER TABLE "Order Items" ADD COLUMN "c_{i}" TEXT;')
        else:
            parts.append(f'INSERT INTO "it\'s--/*" ("id", "note") VALUES ({i}, E\'row {i}\\\'s -- not /* a comment\');')
    return "\n".join(parts) + "\n"


def timed(sql: str, runs: int) -> tuple[float, int]:
    timings, found = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        found = len(plan_sql(sql, "bench"))
        timings.append(time.perf_counter() - start)
    return statistics.median(timings), found


def main() -> int:
    small, large = migration(2000), migration(20000)
    small_s, small_n = timed(small, 5)
    large_s, large_n = timed(large, 5)
    print(f"sql_plan, {small_n} statements ({len(small) / 1e6:.2f} MB): median {small_s:.3f} s")
    print(f"sql_plan, {large_n} statements ({len(large) / 1e6:.2f} MB): median {large_s:.3f} s")
    print(f"ratio 20,000 / 2,000 = {large_s / small_s:.1f} (linear: about 10)")
    print(f"goal < {GOAL_S:.0f} s for 20,000 statements: {'met' if large_s < GOAL_S else 'MISSED'}")
    return 0 if large_s < GOAL_S else 1


if __name__ == "__main__":
    sys.exit(main())
