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
  - Keeps the newest I(keep) snapshots of the same database in the folder and deletes older ones
    (only those with a manifest of this database; nothing else in the folder is touched).
  - The Prisma URL is converted for libpq (C(?schema=) and other Prisma-only parameters make
    C(pg_dump) fail); the password reaches C(pg_dump) as C(PGPASSWORD), never on a command line.
  - A failed or unverifiable dump leaves no file with the final name and fails the task.
version_added: "1.0.0"
author: Ops team
options:
  database_url:
    description: The Prisma database URL. Never logged. When unset, C(DATABASE_URL) from the environment.
    type: str
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
    description: Compression level passed to C(pg_dump --compress) (0 to 9).
    type: int
    default: 6
  keep:
    description: How many snapshots of this database to keep in I(dest_dir) (the newest), at least 1.
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
    description: Refuse to start unless the free space is at least this many times the database size.
    type: float
    default: 1.0
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
attributes:
  check_mode:
    support: none
    description: Skipped in check mode.
  diff_mode:
    support: none
seealso:
  - module: prisma_database_info
"""

EXAMPLES = r"""
- name: Take a verified snapshot before migrating
  prisma_snapshot:
    database_url: "{{ database_url }}"
    dest_dir: /var/backups/prisma
    keep: 5
  register: __snapshot
"""

RETURN = r"""
path:
  description: The snapshot (a file, or a folder for the directory format).
  returned: success
  type: str
  sample: /var/backups/prisma/app-20240101T020000Z-20240210090000_add_fks.dump
manifest_path:
  description: The JSON manifest beside it.
  returned: success
  type: str
manifest:
  description: The manifest's content.
  returned: success
  type: dict
format:
  description: The pg_dump format used (C(auto) resolved to C(custom) or C(directory)).
  returned: success
  type: str
jobs:
  description: The pg_dump jobs used.
  returned: success
  type: int
sha256:
  description: SHA-256 of the file (directory format - of every file's name and content, in name order).
  returned: success
  type: str
size_bytes:
  description: Size on disk.
  returned: success
  type: int
duration_s:
  description: Seconds the dump and its verification took.
  returned: success
  type: float
removed:
  description: Older snapshots deleted by the retention.
  returned: success
  type: list
  elements: str
"""

import datetime
import json
import os
import re
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_pg import (
    client_tools,
    explain_psql_error,
    psql_env,
    psql_json,
    quote_ident,
    quote_literal,
    row_counts_sql,
    stop_child,
    target_connection,
)
from ansible.module_utils.prisma_snapshots import (
    choose_format,
    manifests,
    remove,
    same_database,
    sha256_of,
    size_of,
)
from ansible.module_utils.prisma_url import redact


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def main():
    module = AnsibleModule(
        argument_spec={
            "database_url": {"type": "str", "no_log": True},
            "dest_dir": {"type": "path", "required": True},
            "format": {"type": "str", "choices": ["auto", "custom", "directory"], "default": "custom"},
            "jobs": {"type": "int", "default": 1},
            "compress": {"type": "int", "default": 6},
            "keep": {"type": "int", "default": 5},
            "run_id": {"type": "str", "default": ""},
            "purpose": {"type": "str", "choices": ["pre_migration", "safety", "manual"], "default": "pre_migration"},
            "protect": {"type": "list", "elements": "path", "default": []},
            "min_free_ratio": {"type": "float", "default": 1.0},
            "pg_dump": {"type": "str", "default": "pg_dump"},
            "pg_restore": {"type": "str", "default": "pg_restore"},
            "psql": {"type": "str", "default": "psql"},
        },
        supports_check_mode=False,
    )
    p = module.params
    result = {"changed": False}
    url = p["database_url"] or os.environ.get("DATABASE_URL")
    partial = None
    running = []  # a pg_dump still writing, stopped before its partial file is removed

    def fail(msg):
        for proc in running:
            stop_child(proc)
        if partial:
            remove(partial)
        result["msg"] = redact(msg, url)
        module.fail_json(**result)

    if p["keep"] < 1:
        fail(f"keep is {p['keep']}: keep at least the snapshot being taken (1 or more)")
    if not 0 <= p["compress"] <= 9:
        fail(f"compress is {p['compress']}: give a level from 0 to 9")
    conn = target_connection(url, fail)
    tools = client_tools(module, p, ("pg_dump", "pg_restore", "psql"), fail)

    os.makedirs(p["dest_dir"], mode=0o700, exist_ok=True)
    os.chmod(p["dest_dir"], 0o700)
    env = psql_env(conn, app="prisma-snapshot")

    schema = conn["schema"]
    table = f"{quote_ident(schema)}.{quote_ident('_prisma_migrations')}"
    info = psql_json(
        module,
        tools["psql"],
        conn,
        "SELECT json_build_object('server_version', current_setting('server_version'),"
        " 'size_bytes', pg_database_size(current_database()),"
        f" 'managed', to_regclass({quote_literal(table)}) IS NOT NULL)",
        fail,
    )
    st = os.statvfs(p["dest_dir"])
    free = st.f_bavail * st.f_frsize
    if free < info["size_bytes"] * p["min_free_ratio"]:
        fail(
            f"not enough space in {p['dest_dir']}: {free} bytes free, database {conn['database']} is"
            f" {info['size_bytes']} bytes (x{p['min_free_ratio']}) - free space or point backup_dir elsewhere"
        )
    p["format"], p["jobs"] = choose_format(p["format"], p["jobs"], info["size_bytes"], os.cpu_count())
    result.update(format=p["format"], jobs=p["jobs"])
    # One repeatable-read session exports its snapshot: the manifest's counts
    # and migration list and pg_dump (--snapshot) all see the same moment,
    # whatever the application writes meanwhile.
    session = subprocess.Popen(
        [tools["psql"], "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "-v", "ON_ERROR_STOP=1"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        text=True,
    )

    def ask(sql):
        """Send statements; return the one line the last of them prints."""
        try:
            session.stdin.write(sql + "\n")
            session.stdin.flush()
        except BrokenPipeError:
            pass
        line = session.stdout.readline()
        if not line:
            session.kill()
            fail(
                f"the snapshot session failed: {explain_psql_error(session.stderr.read(), conn)} - nothing was migrated"
            )
        return line.strip()

    def one_line(sql):
        return f"SELECT replace(({sql})::text, E'\\n', ' ');"

    snapshot_id = ask("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SELECT pg_export_snapshot();")
    applied = []
    if info["managed"]:
        applied = json.loads(
            ask(
                one_line(
                    "SELECT coalesce(json_agg(migration_name ORDER BY finished_at, migration_name), '[]') FROM "
                    f"{table} WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
                )
            )
        )

    started = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 (targets may run Python < 3.11)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    last = applied[-1] if applied else "none"
    base = f"{_safe(conn['database'])}-{stamp}-{_safe(last)}"
    final = os.path.join(p["dest_dir"], base + (".dump" if p["format"] == "custom" else ".dir"))
    partial = final + ".partial"
    # Leftovers of a run killed mid-dump (the run lock guarantees none is in progress).
    for name in os.listdir(p["dest_dir"]):
        if re.match(re.escape(_safe(conn["database"])) + r"-\d{8}T\d{6}Z-.*\.partial$", name):
            remove(os.path.join(p["dest_dir"], name))
    if os.path.exists(final):
        fail(f"{final} exists already: two snapshots in the same second? run again")

    argv = [
        tools["pg_dump"],
        f"--format={p['format']}",
        f"--compress={p['compress']}",
        f"--schema={schema}",
        f"--snapshot={snapshot_id}",
        f"--file={partial}",
    ]
    if p["format"] == "directory" and p["jobs"] > 1:
        argv.append(f"--jobs={p['jobs']}")
    t0 = time.monotonic()
    old_umask = os.umask(0o077)
    try:
        dump = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, **env},
            text=True,
        )
    finally:
        os.umask(old_umask)
    running.append(dump)
    # The manifest's exact row counts, in the same snapshot, while pg_dump runs
    # (the count scans every table once; done after the dump it added its whole time).
    try:
        tables = json.loads(ask(one_line(row_counts_sql(schema))))
    except BaseException:
        stop_child(dump)
        raise
    _out, err = dump.communicate()
    running.remove(dump)
    rc = dump.returncode
    try:
        session.stdin.write("COMMIT;\n")
        session.stdin.close()
    except BrokenPipeError:
        pass
    session.wait()
    if rc != 0:
        fail(f"pg_dump failed (exit {rc}): {explain_psql_error(err, conn, 'pg_dump')} - nothing was migrated")
    rc, toc, err = module.run_command([tools["pg_restore"], "--list", partial], check_rc=False)
    entries = [ln for ln in toc.splitlines() if ln.strip() and not ln.startswith(";")]
    if rc != 0 or not entries:
        fail(
            f"the dump could not be verified with pg_restore --list: {(err or 'empty table of contents').strip()[:200]}"
        )
    checksum = sha256_of(partial)
    os.rename(partial, final)
    partial = None
    duration = round(time.monotonic() - t0, 3)
    if os.path.isdir(final):
        for name in os.listdir(final):
            os.chmod(os.path.join(final, name), 0o600)
        os.chmod(final, 0o700)
    else:
        os.chmod(final, 0o600)

    rc, version, _err = module.run_command([tools["pg_dump"], "--version"], check_rc=False)
    manifest = {
        "manifest_version": 1,
        "database": conn["database"],
        "host": conn["host"],
        "port": conn["port"],
        "schema": schema,
        "server_version": info["server_version"],
        "pg_dump_version": version.strip(),
        "format": p["format"],
        "path": final,
        "file": os.path.basename(final),
        "size_bytes": size_of(final),
        "database_size_bytes": info["size_bytes"],
        "sha256": checksum,
        "toc_entries": len(entries),
        "started_at": started.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "duration_s": duration,
        "applied_migrations": applied,
        "last_migration": applied[-1] if applied else None,
        "tables": tables,
        "run_id": p["run_id"],
        "purpose": p["purpose"],
    }
    manifest_path = final + ".manifest.json"
    fd = os.open(manifest_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)

    # Retention: the newest `keep` snapshots of this database (by manifest).
    mine = [
        (data.get("started_at", ""), data["file"], os.path.basename(path))
        for path, data in manifests(p["dest_dir"])
        if same_database(data, conn)
    ]
    removed = []
    protected = {os.path.basename(x.rstrip("/")) for x in p["protect"]}
    for _started, file, manifest_name in mine[p["keep"] :]:
        if file == manifest["file"] or file in protected:
            continue
        remove(os.path.join(p["dest_dir"], file))
        remove(os.path.join(p["dest_dir"], manifest_name))
        removed.append(file)

    result.update(
        changed=True,
        path=final,
        manifest_path=manifest_path,
        manifest=manifest,
        sha256=checksum,
        size_bytes=manifest["size_bytes"],
        duration_s=duration,
        removed=removed,
        msg=f"snapshot {final} ({manifest['size_bytes']} bytes, {len(entries)} TOC entries) verified in {duration} s",
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
