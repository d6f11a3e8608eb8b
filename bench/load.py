"""Benchmark: what the application sees while the migration runs (issue 19, make bench-load).

Builds a database of SIZE MB with the fixture app's schema at migration 2 of 5 (three pending: a
backfill UPDATE of every product, an index on products, two foreign keys on order_items), then runs
an application-like workload beside each of:

  A   the bare commands (pg_dump -Fc, prisma generate, migrate deploy, migrate status, validate);
  B   migrate.yml (its defaults, with allow_blocking=true: the backfill is over the 5 s budget and the
      gate would otherwise refuse before anything ran, which the table also shows);
  C   A and B again while a blocker session holds a row lock on products in an open transaction for
      BLOCKER seconds (60 by default).

The workload: CLIENTS sessions (16) of psycopg2, each at RATE operations per second (5), cycling
through an insert into order_items, an update of a product's price and a read of a product and an
order by primary key. Latency is counted from when the operation was due (a late start is the application's
wait too). Per run: operations, failed, p50/p99/max latency, and the longest time no write to products (updates) and to order_items (inserts) finished.
Each run gets a fresh copy of the database. The table goes to bench/results/<date>-load.md.

    .venv/bin/python bench/load.py                 # ~1 GB (make bench-load)
    .venv/bin/python bench/load.py --size 200      # quicker, smaller
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from migrate_overhead import build_source, fresh_copy, playbook_command  # noqa: E402
from pgcluster import PG_BIN, PgCluster  # noqa: E402
from prismaapp import PRISMA_COMMAND, PrismaApp  # noqa: E402


class Workload:
    """CLIENTS sessions at a fixed rate; every operation's due time, latency and outcome."""

    def __init__(self, db, clients: int, rate: float, products: int, orders: int):
        self.db, self.clients, self.period = db, clients, 1.0 / rate
        self.products, self.orders = products, orders
        self.ops: list[tuple[float, float, str, bool]] = []  # (due, finished, kind, ok)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True) for i in range(clients)]

    def _connect(self):
        import psycopg2

        db = self.db
        conn = psycopg2.connect(
            host="127.0.0.1", port=db.cluster.port, dbname=db.name, user=db.user, password=db.password,
            application_name="bench-app",
        )  # fmt: skip
        conn.autocommit = True
        return conn

    def _client(self, index: int):
        rnd = random.Random(index)  # noqa: S311 (a workload, not a secret)
        conn = self._connect()
        kinds = ("insert", "update", "read")
        due = time.monotonic() + rnd.random() * self.period
        n = index
        while not self._stop.is_set():
            now = time.monotonic()
            if due > now:
                time.sleep(due - now)
            kind = kinds[n % 3]
            n += 1
            ok = True
            try:
                with conn.cursor() as cur:
                    if kind == "insert":
                        cur.execute(
                            "INSERT INTO order_items (order_id, product_id, quantity) VALUES (%s, %s, 1)",
                            (1 + rnd.randrange(self.orders), 1 + rnd.randrange(self.products)),
                        )
                    elif kind == "update":
                        cur.execute(
                            "UPDATE products SET price_cents = price_cents + 1 WHERE id = %s",
                            (2 + rnd.randrange(self.products - 1),),  # never id 1: the blocker's row
                        )
                    else:
                        # by primary key only: an unindexed join scans order_items (seconds at 1 GB), and the
                        # workload's own long reads then hold locks the blocker check rightly counts
                        cur.execute(
                            "SELECT p.name, p.price_cents, o.customer_email FROM products p, orders o"
                            " WHERE p.id = %s AND o.id = %s",
                            (1 + rnd.randrange(self.products), 1 + rnd.randrange(self.orders)),
                        )
                        cur.fetchall()
            except Exception:  # noqa: BLE001 - every failure is the application's failure
                ok = False
                try:
                    conn.close()
                except Exception:  # noqa: BLE001, S110
                    pass
                conn = self._connect()
            with self._lock:
                self.ops.append((due, time.monotonic(), kind, ok))
            due += self.period
        conn.close()

    def start(self):
        for t in self._threads:
            t.start()
        return self

    def stop(self, start: float, end: float) -> dict:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=120)
        window = [o for o in self.ops if start <= o[0] <= end]
        latencies = sorted((o[1] - o[0]) * 1000 for o in window if o[3])

        def stall(kind):  # the longest time no write of this kind finished
            done = sorted(o[1] for o in self.ops if o[3] and o[2] == kind and o[1] >= start and o[0] <= end)
            marks = [start, *done, end]
            return round(max(b - a for a, b in zip(marks, marks[1:], strict=False)), 2)

        def pct(p):
            return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))], 1) if latencies else None

        return {
            "operations": len(window),
            "failed": sum(1 for o in window if not o[3]),
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "max_ms": round(latencies[-1], 1) if latencies else None,
            "stall_products_s": stall("update"),
            "stall_order_items_s": stall("insert"),
        }


def run(argv, *, cwd=ROOT, env=None) -> tuple[int, str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def bare(db, app: PrismaApp, work: Path) -> dict:
    env = app.env(db.url())
    libpq = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    rc, out = run([f"{PG_BIN}/pg_dump", "-Fc", "-f", str(work / "a.dump"), "-d", db.url(prisma=False)], env=libpq)
    (work / "a.dump").unlink(missing_ok=True)
    for args in (["generate"], ["migrate", "deploy"], ["migrate", "status"], ["validate"]):
        if rc != 0:
            break
        rc, out = run([*PRISMA_COMMAND, *args], cwd=app.path, env=env)
    return {"rc": rc, "outcome": "migrated" if rc == 0 else f"failed: {out.strip().splitlines()[-1][:80]}"}


def playbook(db, app: PrismaApp, work: Path, run_id: str, extra: dict) -> dict:
    report_dir, backup_dir = work / "reports", work / "backups"
    argv, env = playbook_command(db, app, work, run_id, extra)
    rc, _out = run(argv, env=env)
    shutil.rmtree(backup_dir, ignore_errors=True)
    report = json.loads((report_dir / f"{run_id}-localhost.json").read_text())
    blocked = (report.get("locks_observed") or {}).get("blocked") or []
    message = report["message"] if isinstance(report["message"], str) else " ".join(report["message"][:2])
    outcome = report["result"] if rc == 0 else f"{report['result']}: {' '.join(message.split())[:110]}"
    return {
        "rc": rc,
        "outcome": outcome,
        "blocked": blocked,
        "estimates": [b["estimate"]["text"] for b in report["blocking"]],
    }


def blocker(db, seconds: float) -> threading.Thread:
    """A session that holds a row lock on products (an open transaction) for ``seconds``."""
    import psycopg2

    conn = psycopg2.connect(
        host="127.0.0.1", port=db.cluster.port, dbname=db.name, user=db.user, password=db.password,
        application_name="bench-report-job",
    )  # fmt: skip
    cur = conn.cursor()
    cur.execute("UPDATE products SET price_cents = price_cents WHERE id = 1")

    def hold():
        time.sleep(seconds)
        conn.rollback()
        conn.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    return thread


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="database size in MB (default 1024)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rate", type=float, default=5.0, help="operations per second per client")
    parser.add_argument("--blocker", type=float, default=60.0, help="seconds the blocker holds its row lock")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-load-"))
    rows = []
    with PgCluster() as cluster:
        print(f"bench-load: building ~{args.size} MB", flush=True)
        source = build_source(cluster, args.size, work)
        products = source.query("SELECT max(id) FROM products")[0][0]
        orders = source.query("SELECT max(id) FROM orders")[0][0]
        app = PrismaApp.copy_to(work / "app")
        plans = [
            ("A", "bare commands", False, lambda db, i: bare(db, app, work)),
            ("B", "migrate.yml", False, lambda db, i: playbook(db, app, work, f"bench-load-{i}", {"allow_blocking": True})),
            ("A+blocker", "bare commands, blocker", True, lambda db, i: bare(db, app, work)),
            ("B+blocker", "migrate.yml, blocker", True,
             lambda db, i: playbook(db, app, work, f"bench-load-{i}", {"allow_blocking": True})),
        ]  # fmt: skip
        for i, (label, what, with_blocker, action) in enumerate(plans):
            db = fresh_copy(cluster, source, "bench_load")
            load = Workload(db, args.clients, args.rate, products, orders).start()
            time.sleep(3)  # the workload settles
            held = blocker(db, args.blocker) if with_blocker else None
            start = time.monotonic()
            result = action(db, i)
            end = time.monotonic()
            if held is not None:
                held.join()
                end = max(end, time.monotonic())
            time.sleep(2)
            seen = load.stop(start, end)
            row = {"run": label, "what": what, "seconds": round(end - start, 1), **seen, **result}
            rows.append(row)
            print(json.dumps(row), flush=True)
    shutil.rmtree(work, ignore_errors=True)
    table = [
        "| run | outcome | run s | app ops | failed | p50 ms | p99 ms | max ms | longest stall of writes to products s"
        " | to order_items s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['run']} | {r['outcome']} | {r['seconds']} | {r['operations']} | {r['failed']} | {r['p50_ms']}"
            f" | {r['p99_ms']} | {r['max_ms']} | {r['stall_products_s']} | {r['stall_order_items_s']} |"
        )
    text = "\n".join(table)
    print(text)
    out = ROOT / "bench" / "results" / f"{datetime.date.today()}-load-{platform.node()}-{args.size}mb.md"
    notes = [
        f"# bench-load, {args.size} MB, {args.clients} clients x {args.rate:g} ops/s, blocker {args.blocker:g} s",
        "",
    ]
    for r in rows:
        if r.get("blocked") or r.get("estimates"):
            notes.append(f"- {r['run']}: measured {r.get('blocked')}; the plan's estimates: {r.get('estimates')}")
    out.write_text("\n".join([*notes, "", text, ""]))
    print(f"bench-load: wrote {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
