"""Benchmark: what migrate.yml costs over the bare commands an operator would type.

Builds a PostgreSQL 15 database of SIZE MB with the fixture app's schema at
migration 2 of 5 (three pending: a backfill UPDATE of every product, an index,
two foreign keys), then measures, alternating on fresh copies of it:

  A  the bare sequence: pg_dump -Fc, prisma generate, migrate deploy,
     migrate status, validate
  B  ansible-playbook -i inventories/local playbooks/migrate.yml, non-interactive

and prints each stage's median, the peak memory of each process tree, and as
its last line the median of the per-pair ratios: ``ratio B/A = X.XX``. It also
compares snapshot formats (custom vs directory with --jobs: MB/s, restore time)
and writes everything to bench/results/<date>-<machine>.md.

    .venv/bin/python bench/migrate_overhead.py            # ~1 GB, 3 pairs (make bench)
    .venv/bin/python bench/migrate_overhead.py --quick    # ~100 MB (make bench-quick)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import PG_BIN, PgCluster  # noqa: E402
from prismaapp import PRISMA_COMMAND, PrismaApp, offline_env  # noqa: E402

PHRASE = "DIXIS-PROD-OK"
A_STAGES = ["pg_dump", "generate", "migrate_deploy", "migrate_status", "validate"]


class PeakRss:
    """Peak resident memory (MB) of a process and all its descendants, sampled every 50 ms."""

    def __init__(self, pid: int):
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree_rss(self) -> float:
        children: dict[int, list[int]] = {}
        rss: dict[int, int] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    fields = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21])
        total, todo = 0, [self.pid]
        while todo:
            pid = todo.pop()
            total += rss.get(pid, 0)
            todo.extend(children.get(pid, []))
        return total * os.sysconf("SC_PAGE_SIZE") / 1e6

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self._tree_rss())
            self._stop.wait(0.05)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def run(argv, *, cwd=ROOT, env=None, quiet=True) -> tuple[float, float]:
    """Run a command to completion; return (seconds, peak MB of its process tree). Fails loudly."""
    start = time.monotonic()
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    peak = PeakRss(proc.pid)
    out, _ = proc.communicate()
    seconds = time.monotonic() - start
    mb = peak.stop()
    if proc.returncode != 0:
        sys.exit(f"bench: {' '.join(map(str, argv[:4]))} failed (exit {proc.returncode}):\n{out[-3000:]}")
    return seconds, mb


def build_source(cluster: PgCluster, size_mb: int, work: Path):
    """The fixture schema at migration 2 of 5, filled with about size_mb of rows and indexes."""
    db = cluster.create_database("bench_source")
    old = PrismaApp.copy_to(work / "old")
    old.keep_only(2)
    res = old.prisma("migrate", "deploy", database_url=db.url())
    if res.rc != 0:
        sys.exit(f"bench: could not deploy the first two migrations:\n{res.output}")
    products, orders, items = int(size_mb * 5500), int(size_mb * 1900), int(size_mb * 4800)
    db.execute(
        "INSERT INTO producers (name, email, region)"
        " SELECT 'Producer ' || g, 'producer' || g || '@example.gr', 'Region ' || (g % 13) FROM generate_series(1, 1000) g"
    )
    db.execute(
        "INSERT INTO products (producer_id, name, price_cents)"
        " SELECT 1 + g % 1000, 'Product ' || g || ' ' || substr(md5(g::text), 1, 10), g % 10000"
        f" FROM generate_series(1, {products}) g"
    )
    db.execute(
        "INSERT INTO orders (customer_email)"
        f" SELECT 'customer' || (g % 50000) || '@example.gr' FROM generate_series(1, {orders}) g"
    )
    db.execute(
        "INSERT INTO order_items (order_id, product_id, quantity)"
        f" SELECT 1 + g % {orders}, 1 + (g * 7) % {products}, 1 + g % 5 FROM generate_series(1, {items}) g"
    )
    cluster.psql("VACUUM ANALYZE", dbname=db.name)
    cluster.psql("CHECKPOINT")
    return db


def fresh_copy(cluster: PgCluster, source, name: str):
    cluster.drop_database(name)
    db = cluster.create_database(name, template=source.name)
    cluster.psql("CHECKPOINT")
    return db


def bare_sequence(db, app: PrismaApp, work: Path) -> dict:
    """A: what the operator's shell script does, timed command by command."""
    env = app.env(db.url())
    libpq = {k: v for k, v in env.items() if k != "DATABASE_URL"}
    dump = work / "a.dump"
    times, peak = {}, 0.0
    times["pg_dump"], mb = run([f"{PG_BIN}/pg_dump", "-Fc", "-f", str(dump), "-d", db.url(prisma=False)], env=libpq)
    peak = max(peak, mb)
    for stage, args in (
        ("generate", ["generate"]),
        ("migrate_deploy", ["migrate", "deploy"]),
        ("migrate_status", ["migrate", "status"]),
        ("validate", ["validate"]),
    ):
        times[stage], mb = run([*PRISMA_COMMAND, *args], cwd=app.path, env=env)
        peak = max(peak, mb)
    dump.unlink()
    times["total"] = sum(times.values())
    return {"times": times, "peak_mb": peak}


def playbook_command(db, app: PrismaApp, work: Path, run_id: str, extra: dict | None = None):
    """migrate.yml on inventories/local, non-interactive, as a deployment sets it: (argv, env); its report
    goes to work/reports, its snapshots to work/backups."""
    variables = {
        "prisma_project_dir": str(app.path),
        "prisma_env": offline_env(app.path),
        "backup_dir": str(work / "backups"),
        "report_dir": str(work / "reports"),
        "confirm": PHRASE,
        "run_id": run_id,
        **(extra or {}),
    }
    vars_file = work / f"vars-{run_id}.json"
    vars_file.write_text(json.dumps(variables))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(DATABASE_URL=db.url(), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    argv = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", "inventories/local", "playbooks/migrate.yml"]
    return [*argv, "-e", f"@{vars_file}"], env


def playbook(db, app: PrismaApp, work: Path, run_id: str) -> dict:
    """B: migrate.yml on inventories/local, non-interactive; stage times from its report."""
    report_dir, backup_dir = work / "reports", work / "backups"
    argv, env = playbook_command(db, app, work, run_id)
    total, peak = run(argv, env=env)
    report = json.loads((report_dir / f"{run_id}-localhost.json").read_text())
    if report["result"] != "migrated":
        sys.exit(f"bench: migrate.yml did not migrate: {report['result']} {report['message']}")
    shutil.rmtree(backup_dir)
    times = dict(report["stages"])
    times.update({f"prisma {k}": v for k, v in report["prisma_durations"].items() if v is not None})
    times["snapshot_dump"] = float(report["snapshot"]["duration_s"])
    times["ansible_start_and_report"] = total - sum(report["stages"].values())
    times["total"] = total
    return {"times": times, "peak_mb": peak}


def snapshot_formats(cluster: PgCluster, source, work: Path, jobs: int) -> list[dict]:
    """Custom format vs directory format with --jobs: dump MB/s and restore seconds (into an empty database)."""
    size_mb = source.query("SELECT pg_database_size(current_database())")[0][0] / 1e6
    env = cluster.admin_env()
    url = source.url(prisma=False)
    rows = []
    for label, dump_args, restore_args in (
        ("custom (-Fc)", ["-Fc"], []),
        (f"directory (-Fd --jobs {jobs})", ["-Fd", f"--jobs={jobs}"], [f"--jobs={jobs}"]),
    ):
        target = work / "formats.dump"
        dump_s, _ = run([f"{PG_BIN}/pg_dump", *dump_args, "-f", str(target), "-d", url], env=env)
        on_disk = sum(p.stat().st_size for p in ([target] if target.is_file() else target.rglob("*")))
        empty = cluster.create_database("bench_restore")
        restore_s, _ = run(
            [
                f"{PG_BIN}/pg_restore",
                "--no-owner",
                "--no-acl",
                *restore_args,
                "-d",
                empty.url(prisma=False),
                str(target),
            ],
            env=env,
        )
        cluster.drop_database(empty.name)
        shutil.rmtree(target) if target.is_dir() else target.unlink()
        rows.append(
            {
                "format": label,
                "dump_s": dump_s,
                "mb_per_s": size_mb / dump_s,
                "size_mb": on_disk / 1e6,
                "restore_s": restore_s,
            }
        )
    return rows


def machine() -> dict:
    mem_kb = int(
        next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal")).split()[1]
    )
    cpu = next(
        (
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ),
        platform.processor(),
    )
    return {"host": platform.node(), "cores": os.cpu_count(), "memory_gb": round(mem_kb / 1024 / 1024, 1), "cpu": cpu}


def versions(app: PrismaApp) -> dict:
    pg = subprocess.run([f"{PG_BIN}/postgres", "--version"], capture_output=True, text=True).stdout.strip()
    pkg = json.loads((app.path / "node_modules" / "prisma" / "package.json").read_text())
    ansible = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "--version"], capture_output=True, text=True
    ).stdout.splitlines()[0]
    return {"postgresql": pg, "prisma": pkg["version"], "ansible": ansible, "python": platform.python_version()}


def med(rows: list[dict], key: str) -> float | None:
    values = [r["times"][key] for r in rows if key in r["times"]]
    return statistics.median(values) if values else None


def markdown(args, info, vers, size_mb, a_runs, b_runs, ratios, formats, jobs) -> str:
    a_total, b_total = med(a_runs, "total"), med(b_runs, "total")
    lines = [
        f"# Benchmark: migrate.yml against the bare commands — {datetime.date.today().isoformat()}",
        "",
        f"Machine `{info['host']}`: {info['cores']} cores ({info['cpu']}), {info['memory_gb']} GB memory.",
        f"{vers['postgresql']}; Prisma {vers['prisma']} (WebAssembly engine, offline recipe); {vers['ansible']};"
        f" Python {vers['python']}.",
        f"Database: {size_mb:.0f} MB (pg_database_size) at migration 2 of 5; three pending migrations"
        " (backfill UPDATE of every product + unique index, an index, two foreign keys).",
        f"{len(ratios)} pairs, A and B alternating on fresh copies; medians in seconds. Command: `{' '.join(args)}`.",
        "",
        "## A: the bare commands",
        "",
        "| stage | median s |",
        "|---|---|",
    ]
    lines += [f"| {stage} | {med(a_runs, stage):.1f} |" for stage in A_STAGES]
    lines += [f"| **total** | **{a_total:.1f}** |", "", "## B: migrate.yml, stage by stage", "", "| stage | median s |"]
    lines += ["|---|---|"]
    order = ["preflight", "prisma preflight_migrate_status", "prisma preflight_validate"]
    order += ["confirm_gate", "queued", "run_lock", "backup_snapshot", "snapshot_dump", "prisma_migrate"]
    order += ["prisma generate", "prisma migrate_deploy", "prisma validate"]
    order += ["migration_validation", "prisma migrate_status", "ansible_start_and_report"]
    for stage in order:
        value = med(b_runs, stage)
        if value is not None:
            indent = "&nbsp;&nbsp;" if stage.startswith("prisma ") or stage == "snapshot_dump" else ""
            stage = stage.replace("prisma preflight_", "prisma ")
            lines.append(f"| {indent}{stage} | {value:.1f} |")
    lines += [f"| **total** | **{b_total:.1f}** |", ""]
    lines += [
        "`snapshot_dump` is pg_dump alone inside `backup_snapshot` (which also verifies and hashes the file);"
        " the `prisma` rows are inside the stage above them (the preflight's migrate status and validate run side"
        " by side with its database reads, the validation's migrate status with its own, so they overlap);"
        " `ansible_start_and_report` is everything outside the stages:"
        " ansible-playbook start, the version check, the report.",
        "",
        f"A types `{' '.join(PRISMA_COMMAND)} …` as an operator would; B uses the roles' default"
        " `prisma_command: prisma`, the checkout's own `node_modules/.bin/prisma` (the same CLI, without npx's"
        " start-up).",
        "",
        "## Ratio and memory",
        "",
        "| pair | A s | B s | B/A |",
        "|---|---|---|---|",
    ]
    for i, (a, b, r) in enumerate(zip(a_runs, b_runs, ratios, strict=True), 1):
        lines.append(f"| {i} | {a['times']['total']:.1f} | {b['times']['total']:.1f} | {r:.2f} |")
    lines += [
        "",
        f"Peak memory of the controller's process tree: A {max(r['peak_mb'] for r in a_runs):.0f} MB (largest command),"
        f" B {max(r['peak_mb'] for r in b_runs):.0f} MB (ansible-playbook and everything it started).",
        "",
        "## Snapshot formats",
        "",
        "| format | dump s | MB/s of database | on disk MB | restore s (into an empty database) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {f['format']} | {f['dump_s']:.1f} | {f['mb_per_s']:.0f} | {f['size_mb']:.0f} | {f['restore_s']:.1f} |"
        for f in formats
    ]
    faster = min(formats, key=lambda f: f["dump_s"] + f["restore_s"])
    lines += [
        "",
        f"Faster here (dump + restore): {faster['format']}, with --jobs {jobs} on {info['cores']} cores.",
        "",
        f"ratio B/A = {statistics.median(ratios):.2f}",
        "",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="database size to generate (default 1024)")
    parser.add_argument("--quick", action="store_true", help="about 100 MB, for CI")
    parser.add_argument("--pairs", type=int, default=3, help="A/B pairs, at least 3 for a median (default 3)")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results", help="folder for the .md file")
    parser.add_argument("--no-results", action="store_true", help="print only, write no results file")
    args = parser.parse_args()
    size = 100 if args.quick else args.size_mb
    if size < 1 or args.pairs < 1:
        parser.error("--size-mb and --pairs must be 1 or more")
    jobs = max(2, min(4, os.cpu_count() or 2))
    info = machine()
    with PgCluster() as cluster, tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        work = Path(tmp)
        print(f"bench: building a {size} MB database (fixture schema at migration 2 of 5) ...", flush=True)
        source = build_source(cluster, size, work)
        size_mb = source.query("SELECT pg_database_size(current_database())")[0][0] / 1e6
        print(f"bench: source database is {size_mb:.0f} MB", flush=True)
        a_runs, b_runs, ratios = [], [], []
        for pair in range(1, args.pairs + 1):
            results = {}
            for kind in "AB" if pair % 2 else "BA":
                app = PrismaApp.copy_to(work / f"app-{pair}-{kind}")
                db = fresh_copy(cluster, source, f"bench_{kind.lower()}")
                results[kind] = (
                    bare_sequence(db, app, work) if kind == "A" else playbook(db, app, work, f"bench-{pair}")
                )
                if db.query("SELECT count(*) FROM _prisma_migrations WHERE finished_at IS NOT NULL")[0][0] != 5:
                    sys.exit(f"bench: run {kind} of pair {pair} did not apply the three migrations")
                cluster.drop_database(db.name)
                shutil.rmtree(app.path)
            a_runs.append(results["A"])
            b_runs.append(results["B"])
            ratios.append(results["B"]["times"]["total"] / results["A"]["times"]["total"])
            print(
                f"bench: pair {pair}: A {results['A']['times']['total']:.1f} s, B {results['B']['times']['total']:.1f} s,"
                f" B/A {ratios[-1]:.2f}",
                flush=True,
            )
        formats = snapshot_formats(cluster, source, work, jobs)
        vers = versions(PrismaApp.copy_to(work / "app-versions"))
    text = markdown(sys.argv, info, vers, size_mb, a_runs, b_runs, ratios, formats, jobs)
    if not args.no_results:
        args.results.mkdir(parents=True, exist_ok=True)
        out = (
            args.results
            / f"{datetime.date.today().isoformat()}-{info['host']}-{'quick' if args.quick else f'{size}mb'}.md"
        )
        out.write_text(text)
        print(f"bench: results written to {out.relative_to(ROOT)}", flush=True)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
