"""Benchmark: the snapshot at the machine's limit (issue 20).

For each SIZE_MB, fills a throwaway PostgreSQL 15 database with two tables shaped like the app's
(text, integers, timestamps), then measures, side by side in one run:

  limits    read   every table's COPY ... TO STDOUT, one psql per table at once, counted byte by byte
            write  1 GiB of incompressible data into the snapshot folder, synced
            CPU    zlib (pg_dump's gzip) at each level over 2 MiB of the rows, one core
  auto      the project's own prisma_snapshot module (ansible localhost -m prisma_snapshot), its
            defaults: format auto, compress auto - its probe, its choice, its pg_dump
  level 6   pg_dump -Fd --jobs 2 --compress=6 (the default before issue 20), for comparison
  restore   the auto snapshot restored into a new database (pg_restore --jobs 2)

and prints the three limits, each dump's rate (bytes of COPY text per second of pg_dump) and its
ratio to the lower of the read and write limits. Writes bench/results/<date>-snapshot-<machine>.md.

    .venv/bin/python bench/snapshot_rates.py 1024 4096     (make bench-snapshot)
"""

from __future__ import annotations

import datetime
import json
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
from pgcluster import PG_BIN, PgCluster  # noqa: E402
from prisma_dump_rates import probe_compression, probe_read, probe_write  # noqa: E402

MB = 1e6


def fill(db, size_mb: int) -> None:
    """About size_mb of rows on disk, 60 % in products and 40 % in events (two tables: pg_dump's jobs
    work per table)."""
    products = size_mb * 4200
    events = size_mb * 5200
    db.execute(
        "CREATE TABLE products (id serial PRIMARY KEY, producer_id int NOT NULL, name text NOT NULL,"
        " slug text NOT NULL, price_cents int NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"
    )
    db.execute(
        "INSERT INTO products (producer_id, name, slug, price_cents)"
        " SELECT g % 97, 'Product ' || g || ' ' || md5(g::text), 'product-' || g, g % 10000"
        f" FROM generate_series(1, {products}) g"
    )
    db.execute(
        "CREATE TABLE events (id bigint PRIMARY KEY, account int NOT NULL, kind int NOT NULL, body text NOT NULL,"
        " at timestamptz NOT NULL)"
    )
    db.execute(
        "INSERT INTO events SELECT g, g % 5000, g % 7, 'order ' || (g % 977) || ' shipped to ' || md5((g % 313)::text),"
        f" now() - (g || ' s')::interval FROM generate_series(1, {events}) g"
    )
    db.execute(f'ALTER TABLE products OWNER TO "{db.user}"; ALTER TABLE events OWNER TO "{db.user}"; ANALYZE')


def ansible_module(module: str, args: dict, url: str) -> dict:
    """One of the project's modules through Ansible, as the playbooks run it; the URL reaches it through
    the environment only."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "BENCH_DATABASE_URL": url}
    args = json.dumps({"database_url": "{{ lookup('env', 'BENCH_DATABASE_URL') }}", **args})
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible"), "localhost", "-i", "inventories/local", "-o"]
        + ["-m", module, "-a", args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if " => " not in proc.stdout:
        raise SystemExit(f"{module} did not answer: {proc.stdout[-500:]} {proc.stderr[-500:]}")
    head, body = proc.stdout.split(" => ", 1)
    result = json.loads(body)
    if "FAILED" in head or not result.get("path"):
        raise SystemExit(f"{module} failed: {result.get('msg')}")
    return result


def ansible_snapshot(url: str, dest: Path) -> dict:
    """The project's prisma_snapshot with its defaults (format auto, compress auto)."""
    return ansible_module("prisma_snapshot", {"dest_dir": str(dest), "format": "auto"}, url)


def timed(argv, env=None) -> float:
    """Seconds a command took; its error, in one line, when it failed."""
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.strip()[-500:]}")
    return time.monotonic() - start


def timed_restore(cluster: PgCluster, env: dict, path: str, name: str) -> float:
    """Seconds of pg_restore --jobs 2 of a snapshot into a new database ``name``, dropped afterwards."""
    restored = cluster.create_database(name)
    restored.execute("DROP SCHEMA public CASCADE")  # the dump creates it
    seconds = timed(
        [f"{PG_BIN}/pg_restore", "--jobs=2", "--no-owner", f"--dbname={restored.name}", path],
        {**env, "PGDATABASE": restored.name},
    )
    cluster.drop_database(restored.name)
    return seconds


def measure(cluster: PgCluster, size_mb: int, tmp: Path) -> dict:
    db = cluster.create_database(f"bench{size_mb}")
    t0 = time.monotonic()
    fill(db, size_mb)
    fill_s = time.monotonic() - t0
    size = db.query("SELECT pg_database_size(current_database())")[0][0]
    env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": cluster.superuser}
    env.update(PGPASSWORD=cluster.superuser_password, PGDATABASE=db.name)
    psql = f"{PG_BIN}/psql"

    read, copy_bytes, sample, error = probe_read(
        psql, env, ["COPY public.products TO STDOUT", "COPY public.events TO STDOUT"]
    )
    if error:
        raise SystemExit(f"read: {error}")
    write = probe_write(str(tmp), size=1024 * 1024 * 1024)
    levels = probe_compression(sample, levels=range(10))
    bound = min(read, write)

    auto = ansible_snapshot(db.url(prisma=False), tmp / "auto")
    limits = auto["limits"]
    auto_dump_s = limits["copy_bytes"] / limits["dump_bytes_per_s"]  # pg_dump's own seconds
    level6 = tmp / "level6.dir"
    level6_s = timed([f"{PG_BIN}/pg_dump", "-Fd", "--jobs=2", "--compress=6", f"--file={level6}"], env)
    restore_s = timed_restore(cluster, env, auto["path"], f"restored{size_mb}")
    cluster.drop_database(db.name)
    return {
        "size_mb": size / MB,
        "fill_s": fill_s,
        "copy_mb": copy_bytes / MB,
        "read": read / MB,
        "write": write / MB,
        "levels": levels,
        "bound": bound / MB,
        "auto": {
            "compress": auto["compress"],
            "jobs": auto["jobs"],
            "format": auto["format"],
            "probe_s": limits["probe_s"],
            "probe_read": limits["read_bytes_per_s"] / MB,
            "probe_write": limits["write_bytes_per_s"] / MB,
            "dump_s": auto_dump_s,
            "rate": copy_bytes / auto_dump_s / MB,
            "size_mb": auto["size_bytes"] / MB,
            "reason": limits["reason"],
        },
        "level6": {"dump_s": level6_s, "rate": copy_bytes / level6_s / MB},
        "restore_s": restore_s,
    }


def report(results: list, machine: str) -> str:
    lines = [
        f"# Benchmark: the snapshot at the machine's limit — {datetime.date.today()}",
        "",
        f"Machine `{machine}`: {os.cpu_count()} cores; PostgreSQL 15 on the same host (the server and pg_dump share"
        " the cores). Rates are bytes of COPY text per second. Command: `make bench-snapshot`.",
        "",
        "| database | read limit | write limit | zlib 1 / 6 / 9 (one core) | auto: level, probe | auto dump | ratio | level 6 dump | ratio | restore |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        z = r["levels"]
        cpu = " / ".join(f"{z[lvl]['cpu_bytes_per_s'] / MB:.0f}" for lvl in (1, 6, 9))
        a, six = r["auto"], r["level6"]
        lines.append(
            f"| {r['size_mb']:.0f} MB ({r['copy_mb']:.0f} MB of rows) | {r['read']:.0f} MB/s | {r['write']:.0f} MB/s"
            f" | {cpu} MB/s | {a['compress']}, {a['probe_s']:.1f} s | {a['dump_s']:.1f} s, {a['rate']:.0f} MB/s, {a['size_mb']:.0f} MB"
            f" | **{a['rate'] / r['bound']:.2f}** | {six['dump_s']:.1f} s, {six['rate']:.0f} MB/s | {six['rate'] / r['bound']:.2f}"
            f" | {r['restore_s']:.1f} s |"
        )
    lines += ["", "The probe's own view (what `compress: auto` chose from):", ""]
    for r in results:
        a = r["auto"]
        lines.append(
            f"- {r['size_mb']:.0f} MB: probe read {a['probe_read']:.0f} MB/s, write {a['probe_write']:.0f} MB/s; {a['reason']}"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [1024]
    results = []
    with PgCluster() as cluster:
        for size_mb in sizes:
            with tempfile.TemporaryDirectory(prefix="bench-snapshot-") as tmp:
                r = measure(cluster, size_mb, Path(tmp))
            results.append(r)
            a = r["auto"]
            print(
                f"{r['size_mb']:.0f} MB: limits read {r['read']:.0f} MB/s, write {r['write']:.0f} MB/s;"
                f" auto level {a['compress']} dumps at {a['rate']:.0f} MB/s = {a['rate'] / r['bound']:.2f} of the bound"
                f" (level 6: {r['level6']['rate'] / r['bound']:.2f}); restore {r['restore_s']:.1f} s",
                flush=True,
            )
    return publish("snapshot", report(results, platform.node()))


def publish(kind: str, text: str) -> int:
    """Print the report and keep it as bench/results/<date>-<kind>-<machine>.md."""
    out = ROOT / "bench" / "results" / f"{datetime.date.today()}-{kind}-{platform.node()}.md"
    out.write_text(text)
    print(text)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
