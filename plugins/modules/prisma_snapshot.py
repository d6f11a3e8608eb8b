#!/usr/bin/python
"""Ansible module: prisma_snapshot."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_snapshot
short_description: Take a verified pg_dump snapshot of a Prisma database, with a manifest
description:
  - Dumps the Prisma schema of the database with C(pg_dump) (custom format, or directory format
    with C(--jobs)), writes it under a temporary name, verifies it with C(pg_restore --list),
    records its SHA-256 and only then gives it its final name, mode 0600 in a 0700 folder.
  - Writes a JSON manifest beside it - database, server and C(pg_dump) versions, size, duration,
    checksum, the applied migrations and the exact row count of every table at backup time.
  - Keeps the newest I(keep) snapshots of the same target - host, port, database and schema, and the
    cluster's system identifier when both manifests have it - in the folder and deletes older ones (only
    those with a manifest of this target; other schemas' snapshots and other files are never touched).
  - Refuses to start unless the free space in I(dest_dir) is at least the database size times
    I(min_free_ratio) - the rule M(prisma_database_info) reports as I(backup_dir_room).
  - A failed or unverifiable dump leaves no file with the final name and fails the task.
  - Refused through a transaction-mode pooler (a URL with C(pgbouncer=true), or a server whose answers
    show one - a session's server process changes between two statements, or two live sessions share
    one) - the exported snapshot needs one server session. The message says to give the direct database URL.
  - With I(run_lock), renews that run lock's lease before the dump and every quarter of the lease while
    C(pg_dump) and the verification run, so that a snapshot longer than the lease does not cost the run
    its lock; a lock that is not held, or is lost meanwhile, fails the task when the dump ends, before the
    retention removes any older snapshot (the run stops before the deploy).
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  dest_dir:
    description: Folder for snapshots and manifests on this host (created 0700).
    type: path
    required: true
  format:
    description:
      - C(custom) (one file, C(pg_dump -Fc)), C(directory) (C(-Fd), dumps in parallel with I(jobs)), or
        C(auto) - directory format with a job per core (2 to 4) for databases of 64 MiB or more on a host with
        2 cores or more, where it was measured faster (C(bench/results/)); custom otherwise.
    type: str
    choices: [auto, custom, directory]
    default: custom
  jobs:
    description: Parallel jobs for the directory format (with C(auto), 1 means one per core).
    type: int
    default: 1
  compress:
    description:
      - Compression level passed to C(pg_dump --compress), 0 to 9, or C(auto) - measured on this host before
        the dump (about a second, from 64 MiB; level 6 below) - the database's parallel read rate (C(COPY) of its
        largest tables, I(jobs) at once), the write rate of I(dest_dir) (32 MiB, synced, removed) and the CPU
        cost and ratio of levels 1, 3, 6 and 9 on the data read; the most compressing of 0, 1, 3, 6 and 9 that
        keeps the dump at 85 % or more of the lower of the read and write rates. The measurement is returned as
        I(limits) and kept in the manifest.
    type: raw
    default: auto
  limits:
    description:
      - With C(compress=auto), the measurement the preflight already made on this host (M(prisma_database_info)'s
        I(dump_limits)) - its C(compress) is used and no probe runs; it is kept in the manifest.
    type: dict
  keep:
    description: How many snapshots of this database schema to keep in I(dest_dir) (the newest), at least 1.
    type: int
    default: 5
  run_id:
    description: The run this snapshot belongs to, recorded in the manifest.
    type: str
    default: ""
  purpose:
    description:
      - Why the snapshot was taken, recorded in the manifest. C(safety) snapshots (taken before a
        restore) are never chosen as C(latest) by M(prisma_snapshot_info).
    type: str
    choices: [pre_migration, safety, manual]
    default: pre_migration
  protect:
    description: Snapshot paths the retention must never delete (for example the one about to be restored).
    type: list
    elements: path
    default: []
  min_free_ratio:
    description:
      - Refuse to start unless the free space is at least this many times the database size (rounded up). The
        same rule and default as M(prisma_database_info)'s I(min_free_ratio).
    type: float
    default: 1.2
  pg_dump:
    description: The C(pg_dump) client.
    type: str
    default: pg_dump
  pg_restore:
    description: The C(pg_restore) client used for verification.
    type: str
    default: pg_restore
  psql:
    description: The C(psql) client used for the manifest's counts.
    type: str
    default: psql
  run_lock:
    description:
      - The run lock this run holds (C(owner) and C(state_dir), as given to M(prisma_run_lock)). Its lease is
        renewed while the snapshot is taken; the task fails, before or after the dump, when it is not held.
      - Default - none; the lock is then renewed only by its holder (while the local C(ansible-playbook) it
        watches lives) and by the next renewal of the run.
    type: dict
attributes:
  check_mode:
    support: none
    description: Skipped in check mode.
  diff_mode:
    support: none
seealso:
  - module: prisma_database_info
  - module: prisma_run_lock
"""

EXAMPLES = r"""
- name: Take a verified snapshot before migrating
  prisma_snapshot:
    database_url: "{{ database_url }}"
    dest_dir: /var/backups/prisma
    keep: 5
    run_lock: {owner: "{{ run_lock_owner }}", state_dir: /var/backups/prisma/.locks}
  register: __snapshot
"""

RETURN = r"""
path:
  description: The snapshot (a file, or a folder for the directory format); null when none was taken.
  returned: always
  type: str
  sample: /var/backups/prisma/app-20240101T020000Z-20240210090000_add_fks.dump
manifest_path:
  description: The JSON manifest beside it; null when none was written.
  returned: always
  type: str
manifest:
  description: The manifest's content; empty when none was written.
  returned: always
  type: dict
format:
  description: The pg_dump format used (C(auto) resolved to C(custom) or C(directory)); null until chosen.
  returned: always
  type: str
jobs:
  description: The pg_dump jobs used; null until chosen.
  returned: always
  type: int
compress:
  description: The compression level used (C(auto) resolved); null until chosen.
  returned: always
  type: int
limits:
  description:
    - With C(compress=auto) on 64 MiB or more, what bounds the dump on this host, in bytes of C(COPY) text per
      second - C(read_bytes_per_s), C(write_bytes_per_s), C(levels) (each level's C(cpu_bytes_per_s), C(ratio)
      and C(projected_bytes_per_s)), C(bound_bytes_per_s) (the lower of read and write), C(workers),
      C(server_shares_cores), C(probe_s), C(reason), C(compress) (the level chosen), C(copy_bytes) (the tables'
      size in bytes of C(COPY) text, what the dump reads) and C(estimate_s); after the dump, C(dump_bytes_per_s)
      (C(pg_dump)'s own time, the verification excluded) and C(ratio_to_bound). Empty otherwise.
  returned: always
  type: dict
sha256:
  description:
    - SHA-256 of the file (directory format - of every file's name and content, in name order); null when
      none was taken.
  returned: always
  type: str
size_bytes:
  description: Size on disk; null when none was taken.
  returned: always
  type: int
duration_s:
  description: Seconds the dump and its verification took; null when none was taken.
  returned: always
  type: float
removed:
  description: Older snapshots deleted by the retention.
  returned: always
  type: list
  elements: str
"""

import contextlib
import datetime
import json
import os
import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_dump_rates import SMALL_LEVEL, compress_option, measure_limits
from ansible.module_utils.prisma_history import applied_sql, migrations_table
from ansible.module_utils.prisma_pg import (
    client_tools,
    explain_psql_error,
    open_session,
    psql_env,
    psql_json,
    quote_literal,
    row_counts_sql,
    run_psql,
    stop_child,
)
from ansible.module_utils.prisma_runlock import (
    KeepRenewed,
    lease_of,
    pooler_evidence,
    pooler_refusal,
    renew,
    renew_interval,
)
from ansible.module_utils.prisma_snapshots import (
    SPACE_MARGIN,
    apply_retention,
    choose_format,
    free_bytes,
    remove,
    room_for_snapshot,
    sha256_of,
    size_of,
    write_manifest,
)
from ansible.module_utils.prisma_url import redact

POOLER_WHAT = "pg_dump's exported snapshot and the manifest's counts need one server session"


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


class Leftovers:
    """What a failure must undo: a pg_dump still writing (stopped first), then its partial file."""

    def __init__(self):
        self.running = []
        self.partial = None

    def clean(self):
        for proc in self.running:
            stop_child(proc)
        if self.partial:
            remove(self.partial)


class SnapshotSession:
    """One repeatable-read psql session that exports its snapshot: the manifest's
    counts and migration list and pg_dump (--snapshot) all see the same moment,
    whatever the application writes meanwhile."""

    def __init__(self, psql, env, conn, fail):
        self.conn, self.fail = conn, fail
        self.proc = open_session(psql, env)

    def ask(self, sql):
        """Send statements; return the one line the last of them prints."""
        try:
            self.proc.stdin.write(sql + "\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            self.fail(
                f"the snapshot session failed: {explain_psql_error(self.proc.stderr.read(), self.conn)}"
                " - nothing was migrated"
            )
        return line.strip()

    def json(self, sql):
        """The JSON value a query returns, on one line."""
        return json.loads(self.ask(f"SELECT replace(({sql})::text, E'\\n', ' ');"))

    def export(self):
        return self.ask("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();")

    def close(self):
        try:
            self.proc.stdin.write("COMMIT;\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.wait()


def read_target(module, psql, conn, fail):
    """Server version, database size, and whether Prisma manages the schema."""
    return psql_json(
        module,
        psql,
        conn,
        "SELECT json_build_object('server_version', current_setting('server_version'),"
        " 'size_bytes', pg_database_size(current_database()),"
        " 'system_identifier', CASE WHEN has_function_privilege('pg_control_system()', 'execute')"
        " THEN (SELECT system_identifier::text FROM pg_control_system()) END,"
        f" 'managed', to_regclass({quote_literal(migrations_table(conn['schema']))}) IS NOT NULL)",
        fail,
    )


def check_room(dest_dir, conn, size_bytes, ratio, fail):
    free = free_bytes(dest_dir)
    if not room_for_snapshot(free, size_bytes, ratio)[1]:
        fail(
            f"not enough space in {dest_dir}: {free} bytes free, database {conn['database']} is"
            f" {size_bytes} bytes (x{ratio}) - free space or point backup_dir elsewhere"
        )


def snapshot_paths(dest_dir, conn, fmt, applied, started):
    """The final path of this snapshot, after removing the partial files of a run killed mid-dump
    (the run lock guarantees none is in progress)."""
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    # One schema per tenant in one database: the schema is in the name (public keeps the old names).
    owner = _safe(conn["database"]) + ("" if conn["schema"] == "public" else "." + _safe(conn["schema"]))
    base = f"{owner}-{stamp}-{_safe(applied[-1] if applied else 'none')}"
    final = os.path.join(dest_dir, base + (".dump" if fmt == "custom" else ".dir"))
    for name in os.listdir(dest_dir):
        if re.match(re.escape(owner) + r"-\d{8}T\d{6}Z-.*\.partial$", name):
            remove(os.path.join(dest_dir, name))
    return final


def refuse_pooler(module, psql, session, conn, fail):
    """Fail when the session's answers show a transaction-mode pooler: its server process changes
    between two statements, or another session opened in between is served by the same one."""
    first = session.ask("SELECT pg_backend_pid();")
    rc, out, err = run_psql(module, psql, conn, "SELECT pg_backend_pid();")
    if rc != 0:
        fail(f"{explain_psql_error(err, conn)} - nothing was migrated")
    again = session.ask("SELECT pg_backend_pid();")
    try:
        why = pooler_evidence(int(first), int(out.strip()), int(again))
    except ValueError:
        why = f"the server's process ids are not numbers ({first!r}, {out.strip()[:20]!r}, {again!r})"
    if why:
        fail(pooler_refusal(why, POOLER_WHAT))


def dump(module, p, tools, conn, info, fmt, jobs, leftovers, fail):
    """pg_dump of the schema into ``<final>.partial`` in the session's snapshot, while the same session
    counts every table's rows. Returns final, applied, tables, started and t0 (when pg_dump started)."""
    schema = conn["schema"]
    env = psql_env(conn, app="prisma-snapshot")
    session = SnapshotSession(tools["psql"], env, conn, fail)
    refuse_pooler(module, tools["psql"], session, conn, fail)
    snapshot_id = session.export()
    applied = session.json(applied_sql(migrations_table(schema))) if info["managed"] else []

    started = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (targets may run Python < 3.11)
    final = snapshot_paths(p["dest_dir"], conn, fmt, applied, started)
    if os.path.exists(final):
        fail(f"{final} exists already: two snapshots in the same second? run again")
    leftovers.partial = final + ".partial"
    argv = [
        tools["pg_dump"],
        f"--format={fmt}",
        f"--compress={info['compress']}",
        f"--schema={schema}",
        f"--snapshot={snapshot_id}",
        f"--file={leftovers.partial}",
    ]
    if fmt == "directory" and jobs > 1:
        argv.append(f"--jobs={jobs}")
    t0 = time.monotonic()
    old_umask = os.umask(0o077)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
    finally:
        os.umask(old_umask)
    leftovers.running.append(proc)
    # The manifest's exact row counts, in the same snapshot, while pg_dump runs
    # (the count scans every table once; done after the dump it added its whole time).
    try:
        tables = session.json(row_counts_sql(schema))
    except BaseException:
        stop_child(proc)
        raise
    _out, err = proc.communicate()
    dump_s = time.monotonic() - t0
    leftovers.running.remove(proc)
    session.close()
    if proc.returncode != 0:
        fail(
            f"pg_dump failed (exit {proc.returncode}): {explain_psql_error(err, conn, 'pg_dump')} - nothing was migrated"
        )
    return {"final": final, "applied": applied, "tables": tables, "started": started, "t0": t0, "dump_s": dump_s}


def verify(module, pg_restore, final, leftovers, fail):
    """``pg_restore --list`` reads the partial dump, then it gets its final name, mode 0600 (0700 for a
    folder). Returns (TOC entries, SHA-256)."""
    rc, toc, err = module.run_command([pg_restore, "--list", leftovers.partial], check_rc=False)
    entries = [ln for ln in toc.splitlines() if ln.strip() and not ln.startswith(";")]
    if rc != 0 or not entries:
        fail(
            f"the dump could not be verified with pg_restore --list: {(err or 'empty table of contents').strip()[:200]}"
        )
    checksum = sha256_of(leftovers.partial)
    os.rename(leftovers.partial, final)
    leftovers.partial = None
    return len(entries), checksum


def restrict_modes(final):
    """The snapshot readable by its owner only."""
    if os.path.isdir(final):
        for name in os.listdir(final):
            os.chmod(os.path.join(final, name), 0o600)
        os.chmod(final, 0o700)
    else:
        os.chmod(final, 0o600)


def manifest_of(module, p, tools, conn, info, fmt, dumped, toc_entries, checksum, duration):
    """Write the manifest beside the snapshot; return (path, content)."""
    final = dumped["final"]
    _rc, version, _err = module.run_command([tools["pg_dump"], "--version"], check_rc=False)
    manifest = {
        "manifest_version": 1,
        "database": conn["database"],
        "host": conn["host"],
        "port": conn["port"],
        "schema": conn["schema"],
        "system_identifier": info.get("system_identifier"),
        "server_version": info["server_version"],
        "pg_dump_version": version.strip(),
        "format": fmt,
        "jobs": info["jobs"],
        "compress": info["compress"],
        "limits": info["limits"],
        "path": final,
        "file": os.path.basename(final),
        "size_bytes": size_of(final),
        "database_size_bytes": info["size_bytes"],
        "sha256": checksum,
        "toc_entries": toc_entries,
        "started_at": dumped["started"].isoformat(timespec="seconds").replace("+00:00", "Z"),
        "duration_s": duration,
        "applied_migrations": dumped["applied"],
        "last_migration": dumped["applied"][-1] if dumped["applied"] else None,
        "tables": dumped["tables"],
        "run_id": p["run_id"],
        "purpose": p["purpose"],
    }
    path = final + ".manifest.json"
    write_manifest(path, manifest)
    return path, manifest


@contextlib.contextmanager
def renewing(lock):
    """Renew the run lock's lease from a thread while the snapshot is taken (None without run_lock)."""
    if not lock:
        yield None
        return
    interval = renew_interval(lease_of(lock["state_dir"], lock["owner"]))
    with KeepRenewed(lock["state_dir"], lock["owner"], interval) as keeper:
        yield keeper


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "dest_dir": {"type": "path", "required": True},
            "format": {"type": "str", "choices": ["auto", "custom", "directory"], "default": "custom"},
            "jobs": {"type": "int", "default": 1},
            "compress": {"type": "raw", "default": "auto"},
            "limits": {"type": "dict"},
            "keep": {"type": "int", "default": 5},
            "run_id": {"type": "str", "default": ""},
            "purpose": {"type": "str", "choices": ["pre_migration", "safety", "manual"], "default": "pre_migration"},
            "protect": {"type": "list", "elements": "path", "default": []},
            "min_free_ratio": {"type": "float", "default": SPACE_MARGIN},
            "pg_dump": {"type": "str", "default": "pg_dump"},
            "pg_restore": {"type": "str", "default": "pg_restore"},
            "psql": {"type": "str", "default": "psql"},
            "run_lock": {"type": "dict"},
        },
        supports_check_mode=False,
    )
    p = module.params
    result = {"changed": False, "path": None, "manifest_path": None, "manifest": {}, "format": None, "jobs": None}
    result.update(compress=None, limits={})
    result.update(sha256=None, size_bytes=None, duration_s=None, removed=[])
    leftovers = Leftovers()

    def fail(msg):
        leftovers.clean()
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    if p["keep"] < 1:
        fail(f"keep is {p['keep']}: keep at least the snapshot being taken (1 or more)")
    compress = compress_option(p["compress"], fail)
    conn = connect(p, fail)
    if conn.get("pgbouncer"):
        fail(pooler_refusal("the URL says pgbouncer=true", POOLER_WHAT))
    lock = p["run_lock"]
    if lock is not None:
        if not lock.get("owner") or not lock.get("state_dir"):
            fail("run_lock needs owner and state_dir (as given to prisma_run_lock)")
        problem = renew(lock["state_dir"], lock["owner"])
        if problem:
            fail(f"{problem} - no snapshot was taken, nothing was migrated")
    tools = client_tools(module, p, ("pg_dump", "pg_restore", "psql"), fail)
    os.makedirs(p["dest_dir"], mode=0o700, exist_ok=True)
    os.chmod(p["dest_dir"], 0o700)

    info = read_target(module, tools["psql"], conn, fail)
    check_room(p["dest_dir"], conn, info["size_bytes"], p["min_free_ratio"], fail)
    fmt, jobs = choose_format(p["format"], p["jobs"], info["size_bytes"], os.cpu_count())
    result.update(format=fmt, jobs=jobs)
    if compress == "auto":
        limits = p["limits"] or measure_limits(
            module, tools["psql"], conn, p["dest_dir"], info["size_bytes"], jobs, fail
        )
        compress = limits.get("compress", SMALL_LEVEL)
        result.update(limits=limits)
    info.update(compress=compress, jobs=jobs, limits=result["limits"])
    result.update(compress=compress)
    with renewing(lock) as keeper:
        dumped = dump(module, p, tools, conn, info, fmt, jobs, leftovers, fail)
        toc_entries, checksum = verify(module, tools["pg_restore"], dumped["final"], leftovers, fail)
    duration = round(time.monotonic() - dumped["t0"], 3)
    if result["limits"]:
        rate = result["limits"]["copy_bytes"] / max(dumped["dump_s"], 1e-3)  # pg_dump alone, as the limits
        result["limits"].update(
            dump_bytes_per_s=round(rate), ratio_to_bound=round(rate / result["limits"]["bound_bytes_per_s"], 2)
        )
    restrict_modes(dumped["final"])
    manifest_path, manifest = manifest_of(module, p, tools, conn, info, fmt, dumped, toc_entries, checksum, duration)
    # a lock lost while pg_dump ran: stop before the retention deletes anything (the new snapshot stays)
    problem = (keeper.problem or renew(lock["state_dir"], lock["owner"])) if keeper else None
    if problem:
        fail(f"{problem} - the snapshot {dumped['final']} was taken and no older one was removed, nothing was migrated")
    removed = apply_retention(p["dest_dir"], manifest, p["keep"], manifest["file"], p["protect"])

    result.update(
        changed=True,
        path=dumped["final"],
        manifest_path=manifest_path,
        manifest=manifest,
        sha256=checksum,
        size_bytes=manifest["size_bytes"],
        duration_s=duration,
        removed=removed,
    )
    module.exit_json(
        msg=f"snapshot {dumped['final']} ({manifest['size_bytes']} bytes, {toc_entries} TOC entries) verified in {duration} s",
        **result,
    )


if __name__ == "__main__":
    main()
