#!/usr/bin/python
"""Ansible module: prisma_restore."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_restore
short_description: Restore a snapshot's schema in one transaction, so a failed restore changes nothing
description:
  - Replaces the Prisma schema of the target database with the snapshot's content, atomically -
    C(pg_restore --file=-) streams the snapshot as SQL into one C(psql) session inside one explicit
    transaction that first runs C(DROP SCHEMA ... CASCADE); C(COMMIT) is sent only after the whole
    snapshot went through. Until then nothing is visible; if anything fails (a SQL error, the server
    stopping, the connection dropping, pg_restore stopping early) PostgreSQL rolls everything back
    and the database is exactly as before.
  - Dropping the schema removes what the bad migration added (tables, columns, types) as well as
    what it changed; C(pg_restore --clean) alone would leave new objects behind.
  - Cost - the restore holds an exclusive lock on the schema's objects until it commits (the
    application sees errors or waits during it), and it cannot use C(--jobs), which is incompatible
    with a single transaction. Directory-format snapshots are still dumped in parallel.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  path:
    description: The snapshot (verified beforehand with M(prisma_snapshot_info)).
    type: path
    required: true
  schema:
    description: The schema to restore. Default - the URL's C(schema) parameter, else C(public).
    type: str
  no_owner:
    description: Restore without the snapshot's ownership and privileges (C(--no-owner --no-acl)), for a database with other roles (rehearsals).
    type: bool
    default: false
  lock_timeout:
    description: How long the restore waits for the application's locks before giving up (changing nothing).
    type: str
    default: 30s
  psql:
    description: The C(psql) client.
    type: str
    default: psql
  pg_restore:
    description: The C(pg_restore) client.
    type: str
    default: pg_restore
attributes:
  check_mode:
    support: none
    description: Skipped in check mode.
  diff_mode:
    support: none
seealso:
  - module: prisma_snapshot_info
"""

EXAMPLES = r"""
- name: Restore the snapshot taken before the migration
  prisma_restore:
    database_url: "{{ database_url }}"
    path: /var/backups/prisma/app-20240101T020000Z-20240210090000_add_fks.dump
"""

RETURN = r"""
duration_s:
  description: Seconds the restore took (also when it failed and was rolled back); null when it did not start.
  returned: always
  type: float
schema:
  description: The schema restored; null when the URL could not be read.
  returned: always
  type: str
"""

import os
import re
import subprocess
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_pg import (
    client_tools,
    explain_psql_error,
    first_line,
    psql_env,
    psql_json,
    quote_ident,
    quote_literal,
)
from ansible.module_utils.prisma_url import redact


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "path": {"type": "path", "required": True},
            "schema": {"type": "str"},
            "lock_timeout": {"type": "str", "default": "30s"},
            "no_owner": {"type": "bool", "default": False},
            "psql": {"type": "str", "default": "psql"},
            "pg_restore": {"type": "str", "default": "pg_restore"},
        },
        supports_check_mode=False,
    )
    p = module.params
    result = {"changed": False, "duration_s": None, "schema": None}

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    conn = connect(p, fail)
    schema = p["schema"] or conn["schema"]
    result["schema"] = schema
    if not all(ch.isalnum() or ch in " ." for ch in p["lock_timeout"]):
        fail(f"lock_timeout {p['lock_timeout']!r} is not a PostgreSQL duration such as 30s")
    tools = client_tools(module, p, ("psql", "pg_restore"), fail)
    if not os.path.exists(p["path"]):
        fail(f"snapshot {p['path']} does not exist")

    # What DROP SCHEMA ... CASCADE would take with it besides the snapshot's own objects:
    # extensions installed in the schema are recreated; objects of other schemas that
    # depend on it (views, foreign keys) make the restore refuse, before any change.
    lit = quote_literal(schema)
    around = psql_json(
        module,
        tools["psql"],
        conn,
        "SELECT json_build_object("
        "'owner', (SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = " + lit + "),"
        "'extensions', (SELECT coalesce(json_agg(e.extname ORDER BY e.extname), '[]') FROM pg_extension e"
        " JOIN pg_namespace n ON n.oid = e.extnamespace WHERE n.nspname = " + lit + "),"
        "'dependents', (SELECT coalesce(json_agg(DISTINCT dn.nspname || '.' || dc.relname), '[]') FROM pg_depend d"
        " JOIN pg_class c ON c.oid = d.refobjid AND d.refclassid = 'pg_class'::regclass"
        " JOIN pg_namespace cn ON cn.oid = c.relnamespace AND cn.nspname = " + lit + ""
        " JOIN pg_rewrite r ON r.oid = d.objid AND d.classid = 'pg_rewrite'::regclass"
        " JOIN pg_class dc ON dc.oid = r.ev_class JOIN pg_namespace dn ON dn.oid = dc.relnamespace"
        " WHERE dn.nspname <> " + lit + "),"
        "'foreign_keys', (SELECT coalesce(json_agg(tn.nspname || '.' || con.conname), '[]') FROM pg_constraint con"
        " JOIN pg_class t ON t.oid = con.conrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace"
        " JOIN pg_class rt ON rt.oid = con.confrelid JOIN pg_namespace rn ON rn.oid = rt.relnamespace"
        " WHERE con.contype = 'f' AND rn.nspname = " + lit + " AND tn.nspname <> " + lit + "))",
        fail,
    )
    outside = around["dependents"] + around["foreign_keys"]
    if outside:
        fail(
            f"objects outside schema {schema} depend on it ({', '.join(outside)}): DROP SCHEMA CASCADE would destroy them"
            " - restore by hand (pg_restore --clean) or remove those dependencies first; nothing was changed"
        )

    # The schema is recreated by the preamble (with its owner and extensions), so the
    # snapshot's own CREATE SCHEMA entry is left out through a pg_restore list file.
    rc, toc, err = module.run_command([tools["pg_restore"], "--list", p["path"]], check_rc=False)
    if rc != 0:
        fail(f"pg_restore --list cannot read {p['path']}: {first_line(err)}")
    kept = [line for line in toc.splitlines() if not re.search(rf"\bSCHEMA - {re.escape(schema)}\b", line)]
    list_file = tempfile.NamedTemporaryFile("w", prefix="prisma-restore-", suffix=".list", delete=False)
    with list_file:
        list_file.write("\n".join(kept) + "\n")
    preamble = (
        f"SET client_min_messages = warning; SET lock_timeout = '{p['lock_timeout']}';"
        f" DROP SCHEMA IF EXISTS {quote_ident(schema)} CASCADE; CREATE SCHEMA {quote_ident(schema)};"
    )
    if around["owner"] and not p["no_owner"]:
        preamble += f" ALTER SCHEMA {quote_ident(schema)} OWNER TO {quote_ident(around['owner'])};"
    for ext in around["extensions"]:
        preamble += f" CREATE EXTENSION IF NOT EXISTS {quote_ident(ext)} WITH SCHEMA {quote_ident(schema)};"

    env = {**os.environ, **psql_env(conn, app="prisma-restore")}
    restore_log = tempfile.TemporaryFile()  # pg_restore's stderr, drained to a file: a pipe could fill and stall
    start = time.monotonic()
    producer = subprocess.Popen(
        [
            tools["pg_restore"],
            "--file=-",
            f"--use-list={list_file.name}",
            *(["--no-owner", "--no-acl"] if p["no_owner"] else []),
            p["path"],
        ],
        stdout=subprocess.PIPE,
        stderr=restore_log,
    )
    consumer = subprocess.Popen(
        [tools["psql"], "--no-psqlrc", "--quiet", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    # One explicit transaction, committed only after the whole snapshot went
    # through: if pg_restore stops early, psql sees EOF without COMMIT and the
    # server rolls everything back.
    committed = False
    try:
        consumer.stdin.write(f"BEGIN;\n{preamble}\n".encode())
        for chunk in iter(lambda: producer.stdout.read(1 << 20), b""):
            consumer.stdin.write(chunk)
        if producer.wait() == 0:
            consumer.stdin.write(b"\nCOMMIT;\n")
            committed = True
        consumer.stdin.close()
    except BrokenPipeError:  # psql stopped (ON_ERROR_STOP or the server went away)
        producer.kill()
        producer.wait()
        try:
            consumer.stdin.close()
        except BrokenPipeError:
            pass
    psql_err = consumer.stderr.read().decode("utf-8", "replace")
    consumer.wait()
    restore_log.seek(0)
    restore_err = restore_log.read().decode("utf-8", "replace")
    restore_log.close()
    os.unlink(list_file.name)
    result["duration_s"] = round(time.monotonic() - start, 3)
    if consumer.returncode != 0:
        fail(
            f"the restore of {p['path']} failed and was rolled back, the database is unchanged:"
            f" {explain_psql_error(psql_err, conn)}"
        )
    if not committed:
        fail(
            f"pg_restore could not read all of {p['path']} ({first_line(restore_err)}): the restore was rolled back,"
            " the database is unchanged"
        )
    result["changed"] = True
    module.exit_json(
        msg=f"restored schema {schema} of {conn['database']} from {p['path']} in {result['duration_s']} s", **result
    )


if __name__ == "__main__":
    main()
