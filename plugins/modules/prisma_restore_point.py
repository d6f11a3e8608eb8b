#!/usr/bin/python
"""Ansible module: prisma_restore_point."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_restore_point
short_description: Mark the database's state with a named restore point on a verified WAL archive
description:
  - The snapshot of I(backup_method=restore_point) - a second whatever the size of the database, because
    nothing is copied - the cluster's base backup and its archived WAL are the copy.
  - Checks the archive first (as M(prisma_archive_info) with I(check) does; the archiver must not be failing), then,
    in one statement - one snapshot of the database - reads the applied migrations and the exact row count of every
    table of the URL's schema and creates C(pg_create_restore_point('prisma-<run_id>-<hex>')). Then closes the WAL segment
    holding it (C(pg_switch_wal)) and waits up to I(archive_timeout) seconds until the archiver reports it archived -
    a restore point whose WAL is not in the archive cannot be restored to, and the module fails saying so.
  - Writes the point's record (C(<database>-<time>-<last migration>.restore_point), its name, LSN, timeline,
    segment, system identifier) and a manifest beside it (C(.manifest.json), mode 0600, the same keys as a
    pg_dump snapshot's plus C(method=restore_point)), so that C(rollback.yml) finds it as it finds a dump.
    Keeps the newest I(keep) records of this database (a record removed does not remove the point from the WAL).
  - The row counts come from the statement that creates the point; writes the application commits while that
    statement runs are in the point and not in the counts (a pg_dump snapshot has no such gap).
version_added: "1.5.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  dest_dir:
    description: Where the record and its manifest go (created 0700).
    type: path
    required: true
  run_id:
    description:
      - The run's id; the restore point is C(prisma-<run_id>-<6 hex digits>), unique (every target of a run shares
        its id, and a point-in-time restore to a name stops at its first occurrence in the WAL).
    type: str
    required: true
  purpose:
    description: C(pre_migration) (what C(rollback.yml) restores by default) or C(safety) (the state a rollback replaces).
    type: str
    choices: [pre_migration, safety]
    default: pre_migration
  keep:
    description: How many records of this database to keep in I(dest_dir).
    type: int
    default: 5
  protect:
    description: Records never removed by the retention (the one being restored).
    type: list
    elements: path
    default: []
  archive_timeout:
    description: Seconds to wait for the restore point's WAL segment to be archived.
    type: float
    default: 60
  run_lock:
    description: The run lock this run holds (C(owner), C(state_dir)); checked before the point is created.
    type: dict
  psql:
    description: The psql program.
    type: str
    default: psql
"""

EXAMPLES = r"""
- name: Mark the state before migrating
  prisma_restore_point:
    database_url: "{{ database_url }}"
    dest_dir: /var/backups/prisma
    run_id: 20261203T090000Z
"""

RETURN = r"""
path:
  description: The restore point's record.
  returned: success
  type: str
manifest_path:
  description: Its manifest.
  returned: success
  type: str
manifest:
  description:
    - C(method) (C(restore_point)), C(restore_point), C(lsn), C(timeline), C(segment), C(system_identifier),
      C(created_at), C(databases) (every database of the cluster - a restore rewinds them all), C(applied_migrations),
      C(tables), C(counted_in_s) (the statement that counted the rows and made the point), C(archived_in_s) (the
      point's segment switched out and archived) and the keys every snapshot manifest has.
  returned: success
  type: dict
duration_s:
  description: Seconds from the archive check to the point's segment archived.
  returned: success
  type: float
removed:
  description: Older records of this database removed by the retention.
  returned: success
  type: list
"""

import datetime
import os
import re
import secrets
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_archive import (
    RESTORE_POINT_SUFFIX,
    STATE_SQL,
    ArchiveProblem,
    manifest_record,
    state_problems,
    switch_and_wait,
)
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_history import applied_sql, migrations_table
from ansible.module_utils.prisma_pg import client_tools, psql_json, quote_literal, row_counts_sql
from ansible.module_utils.prisma_runlock import renew
from ansible.module_utils.prisma_snapshots import MANIFEST_SUFFIX, apply_retention, sha256_of, write_manifest
from ansible.module_utils.prisma_url import redact


def _safe(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[:80]


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "dest_dir": {"type": "path", "required": True},
            "run_id": {"type": "str", "required": True},
            "purpose": {"type": "str", "choices": ["pre_migration", "safety"], "default": "pre_migration"},
            "keep": {"type": "int", "default": 5},
            "protect": {"type": "list", "elements": "path", "default": []},
            "archive_timeout": {"type": "float", "default": 60},
            "run_lock": {"type": "dict"},
            "psql": {"type": "str", "default": "psql"},
        },
        supports_check_mode=False,
    )
    p = module.params
    result = {"changed": False, "path": None, "manifest_path": None, "manifest": {}, "duration_s": None, "removed": []}

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    if p["keep"] < 1:
        fail(f"keep is {p['keep']}: keep at least the restore point being made (1 or more)")
    if not re.match(r"^[A-Za-z0-9_.:-]{1,48}$", p["run_id"]):
        fail(f"run_id {p['run_id']!r} cannot name a restore point: give letters, digits and _ . : - (48 at most)")
    conn = connect(p, fail)
    where = f"{conn['host']}:{conn['port']}"
    lock = p["run_lock"]
    if lock is not None:
        problem = renew(lock.get("state_dir") or "", lock.get("owner") or "")
        if problem:
            fail(f"{problem} - no restore point was made, nothing was migrated")
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    conn = {**conn, "libpq_env": {**conn["libpq_env"], "PGAPPNAME": "prisma-restore-point"}}

    def query(sql):
        return psql_json(module, psql, conn, sql, fail)

    t0 = time.monotonic()
    state = query(STATE_SQL)
    problems = state_problems(state, float("inf"), where)
    if problems:
        fail("no restore point was made: " + "; ".join(problems) + ". Nothing was changed.")
    schema = conn["schema"]
    table = migrations_table(schema)
    managed = query(f"SELECT to_json(to_regclass({quote_literal(table)}) IS NOT NULL)")
    # unique: every target of a run shares its id, and recovery to a name stops at its first occurrence
    name = f"prisma-{p['run_id']}-{secrets.token_hex(3)}"
    applied_query = applied_sql(table) if managed else "SELECT '[]'::json"
    counted = time.monotonic()
    point = query(
        "SELECT json_build_object("
        f"'applied', ({applied_query}),"
        f" 'tables', ({row_counts_sql(schema)}),"
        f" 'lsn', pg_create_restore_point({quote_literal(name)})::text,"
        " 'created_at', to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'))"
    )
    counted = round(time.monotonic() - counted, 3)  # the exact row counts, mostly: the point itself is one WAL record
    result["changed"] = True  # the point is in the WAL from here on
    try:
        switched = switch_and_wait(query, p["archive_timeout"], where)
    except ArchiveProblem as exc:
        fail(
            f"restore point {name} was made at LSN {point['lsn']} but is not in the archive: {exc}."
            " Nothing was migrated; do not rely on this point"
        )
    os.makedirs(p["dest_dir"], mode=0o700, exist_ok=True)
    os.chmod(p["dest_dir"], 0o700)
    started = datetime.datetime.strptime(point["created_at"], "%Y-%m-%dT%H:%M:%SZ")
    owner = _safe(conn["database"]) + ("" if schema == "public" else "." + _safe(schema))
    applied = point["applied"]
    base = f"{owner}-{started:%Y%m%dT%H%M%SZ}-{_safe(applied[-1] if applied else 'none')}"
    record_path = os.path.join(p["dest_dir"], base + RESTORE_POINT_SUFFIX)
    if os.path.exists(record_path):
        fail(f"{record_path} exists already: two restore points in the same second? run again")
    manifest = {
        "manifest_version": 1,
        "method": "restore_point",
        "restore_point": name,
        "lsn": point["lsn"],
        "timeline": state["timeline"],
        "segment": switched["segment"],
        "system_identifier": state.get("system_identifier"),
        "server_version": state.get("server_version"),
        "created_at": point["created_at"],
        "database": conn["database"],
        "host": conn["host"],
        "port": conn["port"],
        "schema": schema,
        "databases": state.get("databases") or [],
        "counted_in_s": counted,
        "archived_in_s": switched["archived_in_s"],
        "path": record_path,
        "file": os.path.basename(record_path),
        "started_at": point["created_at"],
        "size_bytes": 0,
        "applied_migrations": applied,
        "last_migration": applied[-1] if applied else None,
        "tables": point["tables"],
        "run_id": p["run_id"],
        "purpose": p["purpose"],
    }
    fd = os.open(record_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(manifest_record(manifest))
    manifest["sha256"] = sha256_of(record_path)
    manifest["duration_s"] = round(time.monotonic() - t0, 3)
    manifest_path = record_path + MANIFEST_SUFFIX
    write_manifest(manifest_path, manifest)
    removed = apply_retention(p["dest_dir"], manifest, p["keep"], manifest["file"], p["protect"])
    result.update(
        path=record_path,
        manifest_path=manifest_path,
        manifest=manifest,
        duration_s=manifest["duration_s"],
        removed=removed,
    )
    module.exit_json(
        msg=f"restore point {name} at LSN {point['lsn']} (timeline {state['timeline']}) archived in {manifest['duration_s']} s",
        **result,
    )


if __name__ == "__main__":
    main()
