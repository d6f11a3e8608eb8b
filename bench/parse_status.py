"""Benchmark: parse_migrate_status on 3,000 pending names (goal: well under 50 ms).

Run with `make bench-parser`. Prints the median of 50 runs and fails (exit 1)
when it is over the goal, so a regression is visible without a timed unit test.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "module_utils"))

from prisma_status import parse_migrate_status  # noqa: E402

GOAL_MS = 50.0


def main() -> int:
    names = [f"{20240101000000 + i}_migration_{i}" for i in range(3000)]
    text = (
        'Datasource "db": PostgreSQL database "shop", schema "public" at "db:5432"\n\n'
        "3000 migrations found in prisma/migrations\n\n"
        "\x1b[1mFollowing migrations have not yet been applied:\x1b[22m\r\n"
        + "\r\n".join(names)
        + "\r\n\r\nTo apply migrations in production run prisma migrate deploy.\r\n"
    )
    timings = []
    for _ in range(50):
        start = time.perf_counter()
        facts = parse_migrate_status(text, 1)
        timings.append((time.perf_counter() - start) * 1000)
    assert facts["pending"] == names
    median = statistics.median(timings)
    print(f"parse_migrate_status, 3000 pending names: median {median:.2f} ms, max {max(timings):.2f} ms")
    print(f"goal < {GOAL_MS:.0f} ms: {'met' if median < GOAL_MS else 'MISSED'}")
    return 0 if median < GOAL_MS else 1


if __name__ == "__main__":
    sys.exit(main())
