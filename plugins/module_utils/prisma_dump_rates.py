"""What bounds a pg_dump on this host, measured in a few seconds, and the compression level that
keeps the dump at the lower of the database's read rate and the disk's write rate (issue 20).

Three limits, all in bytes of COPY text (what pg_dump reads and compresses) per second:
- read: ``COPY (SELECT * FROM <table> LIMIT n) TO STDOUT`` of the largest tables, ``jobs`` at once,
  counted from the first byte to the last (the server's side, the network and the client's reading);
- write: PROBE_WRITE_BYTES (32 MiB) of incompressible data into the snapshot folder, then fsync (pg_dump
  syncs its output too), then removed;
- compress: zlib (the library pg_dump's gzip levels use) over a sample of the data the read probe
  returned, each level, in CPU seconds of one core, with the ratio it reached.

The projection of a level: the read limit, the write limit divided by the level's ratio, and the
compressors' CPU (one per job, at most one per core) - added to the server's CPU when the server
shares this host's cores. ``choose_level`` takes the most compressing level whose projection is
at least TARGET_SHARE of the lower of the read and write limits (level 0 always is)."""

from __future__ import annotations

import os
import subprocess
import threading
import time
import zlib

try:
    from ansible.module_utils.prisma_pg import explain_psql_error, psql_env, psql_json, quote_literal
    from ansible.module_utils.prisma_snapshots import AUTO_DIRECTORY_MIN_BYTES, nearest_existing
except ImportError:  # unit tests import the file directly
    from prisma_pg import explain_psql_error, psql_env, psql_json, quote_literal
    from prisma_snapshots import AUTO_DIRECTORY_MIN_BYTES, nearest_existing

PROBE_READ_BYTES = 16 * 1024 * 1024  # per job
PROBE_WRITE_BYTES = 32 * 1024 * 1024
SAMPLE_BYTES = 2 * 1024 * 1024
TARGET_SHARE = 0.85  # the 80 %, with a margin for the probe's error
LEVELS = (0, 1, 3, 6, 9)  # the fast end, the middle and both ends: the probe's time stays about a second
LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
SMALL_LEVEL = 6  # below AUTO_DIRECTORY_MIN_BYTES: no probe (it would cost about what it saves)


def compress_option(value, fail):
    """``auto`` or a level from 0 to 9 (an int or its digits); anything else fails in one line."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return "auto"
    text = str(value).strip()
    if isinstance(value, bool) or not text.isdigit() or not 0 <= int(text) <= 9:
        fail(f"compress is {value!r}: give auto or a level from 0 to 9")
    return int(text)


def probe_write(folder: str, size: int = PROBE_WRITE_BYTES) -> float:
    """Bytes per second written into ``folder`` and synced; the probe file is always removed."""
    block = os.urandom(1024 * 1024)
    path = os.path.join(folder, f".prisma-write-probe-{os.getpid()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        start = time.monotonic()
        written = 0
        while written < size:
            written += os.write(fd, block)
        os.fsync(fd)
        return written / max(time.monotonic() - start, 1e-6)
    finally:
        os.close(fd)
        os.unlink(path)


def probe_compression(sample: bytes, levels=LEVELS) -> dict:
    """{level: {"cpu_bytes_per_s", "ratio"}} of zlib over ``sample`` in 256 KiB pieces (pg_dump
    compresses as it streams). Level 0 is no compression: no CPU, ratio 1."""
    out = {}
    for level in levels:
        if level == 0 or not sample:
            out[0 if level == 0 else level] = {"cpu_bytes_per_s": None, "ratio": 1.0}
            continue
        start = time.process_time()
        comp = zlib.compressobj(level)
        size = sum(len(comp.compress(sample[i : i + 262144])) for i in range(0, len(sample), 262144))
        size += len(comp.flush())
        spent = max(time.process_time() - start, 1e-6)
        out[level] = {"cpu_bytes_per_s": len(sample) / spent, "ratio": max(size, 1) / len(sample)}
    return out


def probe_read_sql(tables: list, per_job: int = PROBE_READ_BYTES) -> tuple:
    """(one COPY statement per table, the bytes on disk they cover): ``tables`` is [(quoted name, bytes on
    disk, estimated rows)], each read up to about ``per_job`` bytes (its rows scaled by its size)."""
    statements, covered = [], 0.0
    for name, size_bytes, rows in tables:
        share = min(1.0, per_job / size_bytes) if size_bytes else 1.0
        limit = max(1, int(rows * share)) if rows > 0 else 100000
        covered += size_bytes * share
        statements.append(f"COPY (SELECT * FROM {name} LIMIT {limit}) TO STDOUT")
    return statements, covered


def probe_read(psql: str, env: dict, statements: list, sample_size: int = SAMPLE_BYTES) -> tuple:
    """Run the COPY statements at once, each in its own psql; return (bytes per second from the
    first byte to the last, bytes read, the first ``sample_size`` of them, an error line or None)."""
    procs = [
        subprocess.Popen(
            [psql, "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-c", sql],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
        )
        for sql in statements
    ]
    totals = [0] * len(procs)
    first, last = [], []
    sample = bytearray()
    lock = threading.Lock()

    def drain(i, proc):
        while True:
            chunk = proc.stdout.read1(1 << 20)
            if not chunk:
                return
            now = time.monotonic()
            with lock:
                if not first:
                    first.append(now)
                last[:] = [now]
                totals[i] += len(chunk)
                if len(sample) < sample_size:
                    sample.extend(chunk[: sample_size - len(sample)])

    threads = [threading.Thread(target=drain, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    errors = []
    for proc in procs:
        err = proc.stderr.read().decode(errors="replace").strip()
        if proc.wait() != 0:
            errors.append(err.splitlines()[0] if err else f"psql exited {proc.returncode}")
    if errors:
        return None, sum(totals), bytes(sample), errors[0]
    spent = (last[0] - first[0]) if first else 0.0
    total = sum(totals)
    return (total / spent if spent > 0 else None), total, bytes(sample), None


def projections(read: float, write: float, levels: dict, workers: int, server_shares_cores: bool) -> dict:
    """{level: bytes of COPY text per second the dump can reach at that level}."""
    out = {}
    for level, m in levels.items():
        produced = read
        if m["cpu_bytes_per_s"]:
            compress = workers * m["cpu_bytes_per_s"]
            # on the server's own host its backends and the compressors take turns on the same cores
            produced = 1 / (1 / read + 1 / compress) if server_shares_cores else min(read, compress)
        out[level] = min(produced, write / m["ratio"])
    return out


def choose_level(read: float, write: float, levels: dict, workers: int, server_shares_cores: bool) -> tuple:
    """(level, {level: projection}, the lower of the read and write limits): the most compressing level
    whose projection is at least TARGET_SHARE of that limit."""
    projected = projections(read, write, levels, workers, server_shares_cores)
    bound = min(read, write)
    fast = [lvl for lvl, rate in projected.items() if rate >= TARGET_SHARE * bound] or [0]
    level = min(fast, key=lambda lvl: (levels[lvl]["ratio"], lvl))
    return level, projected, bound


def server_shares_cores(host: str | None) -> bool:
    """Whether the database server runs on this host (a local address or a Unix socket)."""
    host = host or ""
    return host in LOCAL_HOSTS or host.startswith("/")


def largest_tables_sql(schema: str, count: int) -> str:
    """The schema's ``count`` largest tables: [quoted name, bytes on disk, estimated rows], and the bytes
    on disk of all of them (what the dump reads: indexes excluded)."""
    where = f"n.nspname = {quote_literal(schema)} AND c.relkind IN ('r', 'm')"
    return (
        "SELECT json_build_object('tables', coalesce((SELECT json_agg(json_build_array(t.name, t.size, t.rows))"
        " FROM (SELECT format('%I.%I', n.nspname, c.relname) AS name, pg_table_size(c.oid) AS size,"
        " greatest(c.reltuples, 0)::bigint AS rows FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        f" WHERE {where} ORDER BY pg_table_size(c.oid) DESC LIMIT {int(count)}) t), '[]'::json),"
        " 'copy_bytes', (SELECT coalesce(sum(pg_table_size(c.oid)), 0) FROM pg_class c"
        f" JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {where}))"
    )


def measure_limits(module, psql, conn, folder, size_bytes, jobs, fail, level=None) -> dict:
    """What bounds a dump of this database into ``folder`` on this host (``{}`` below
    AUTO_DIRECTORY_MIN_BYTES): the three limits, each level's projection, ``compress`` (``level``, or
    the one ``choose_level`` takes) and ``estimate_s``, the dump's seconds at that level."""
    if size_bytes < AUTO_DIRECTORY_MIN_BYTES:
        return {}
    t0 = time.monotonic()
    found = psql_json(module, psql, conn, largest_tables_sql(conn["schema"], max(jobs, 1)), fail)
    tables = [t for t in found["tables"] if t[1]]
    if not tables:
        return {}
    statements, covered = probe_read_sql(tables)
    read, text_bytes, sample, error = probe_read(psql, psql_env(conn, app="prisma-dump-probe"), statements)
    if error or not read:
        fail(f"the read probe failed: {explain_psql_error(error or 'no rows read', conn)} - nothing was migrated")
    try:
        write = probe_write(nearest_existing(folder))
    except OSError as exc:
        fail(f"the write probe in {folder} failed: {exc.strerror or exc} - nothing was migrated")
    levels = probe_compression(sample)
    workers = max(1, min(len(tables), os.cpu_count() or 1))
    shares = server_shares_cores(conn["host"])
    chosen, projected, bound = choose_level(read, write, levels, workers, shares)
    level = chosen if level is None else int(level)
    # the tables' size on disk in bytes of COPY text, at the ratio the probe read
    copy_bytes = round(found["copy_bytes"] * text_bytes / covered) if covered else found["copy_bytes"]
    return {
        "read_bytes_per_s": round(read),
        "write_bytes_per_s": round(write),
        "bound_bytes_per_s": round(bound),
        "levels": {
            str(lvl): {
                "cpu_bytes_per_s": round(m["cpu_bytes_per_s"]) if m["cpu_bytes_per_s"] else None,
                "ratio": round(m["ratio"], 3),
                "projected_bytes_per_s": round(projected[lvl]),
            }
            for lvl, m in levels.items()
        },
        "workers": workers,
        "server_shares_cores": shares,
        "copy_bytes": copy_bytes,
        "compress": level,
        "estimate_s": round(copy_bytes / projected[level], 1),
        "probe_s": round(time.monotonic() - t0, 2),
        "reason": f"level {chosen} is the most compressing level projected at {TARGET_SHARE:.0%} or more of"
        f" min(read {read / 1e6:.0f} MB/s, write {write / 1e6:.0f} MB/s)",
    }
