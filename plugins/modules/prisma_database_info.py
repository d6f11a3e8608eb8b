#!/usr/bin/python
"""Ansible module: prisma_database_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_database_info
short_description: Check that a Prisma target database answers, and read what a migration run needs
description:
  - Connects with C(psql) using a Prisma-style URL (Prisma-only parameters removed, password in
    C(PGPASSWORD)) and returns the server version, the cluster's system identifier, the database
    size, the sessions holding Prisma's advisory lock 72707369 or this project's run lock, the
    applied migrations and, optionally, the exact row count of every table in the Prisma schema.
  - Fails with one line saying what is wrong and what to do when the server cannot be reached,
    the password is wrong or the database does not exist (C(prisma migrate deploy) would silently
    create a missing database).
  - Also reports the major version of the C(pg_dump) client on this host and the free space
    where snapshots are written.
  - Read-only; C(changed) is always false and it runs in check mode.
version_added: "1.0.0"
author: Ops team
options:
  database_url:
    description:
      - The Prisma database URL. Never logged. When unset, C(DATABASE_URL) from the environment.
    type: str
  row_counts:
    description: Count the rows of every table in the schema (a sequential scan of each table).
    type: bool
    default: false
  row_estimates:
    description:
      - List every table of the schema with the planner's row estimate (C(pg_class.reltuples), 0 when never
        analyzed) instead of counting, instant on any size. Ignored with I(row_counts).
    type: bool
    default: false
  backup_dir:
    description: Report the free bytes of the file system holding this folder (or its nearest existing parent).
    type: path
  checks:
    description:
      - Read-only SQL checks, each C({name, sql, expect}). The query runs in a read-only transaction; its
        first column of the first row, as text, must equal C(expect) (as text). Results in I(checks).
    type: list
    elements: dict
    default: []
  project_dir:
    description:
      - An app checkout (C(package.json), C(prisma/migrations)). When given, the database's C(_prisma_migrations)
        is audited against its migration files, as M(prisma_migration_history_info) does, in the same module run.
    type: path
  migrate_status:
    description:
      - Also run C(prisma migrate status) in I(project_dir) (its default schema, C(prisma/schema.prisma) or what
        C(package.json) or C(prisma.config.ts) name), and with C(validate) C(prisma validate), side by side
        with the reads (they start first, so the reads hide behind Node's start-up). Their facts come back in
        I(migrate_status), as M(prisma_migrate_info) returns them; the module fails as that module does (an invalid
        schema, a timeout, a Prisma command not found), but never on the state itself.
    type: dict
    suboptions:
      command:
        description: The Prisma command prefix, found as in M(prisma_migrate_info).
        type: str
        default: prisma
      environment:
        description: Variables added to the Prisma commands' environment (never C(DATABASE_URL)).
        type: dict
        default: {}
      validate:
        description: Also run C(prisma validate).
        type: bool
        default: false
      timeout:
        description: Seconds after which each Prisma command is stopped and the module fails. C(0) means no limit.
        type: int
        default: 120
  psql:
    description: The C(psql) client.
    type: str
    default: psql
  pg_dump:
    description: The C(pg_dump) client whose major version is reported.
    type: str
    default: pg_dump
  connect_timeout:
    description: Seconds to wait for the connection.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
requirements:
  - C(psql) on the host the module runs on.
seealso:
  - module: prisma_migration_history_info
  - module: prisma_run_lock
"""

EXAMPLES = r"""
- name: Read the target database
  prisma_database_info:
    database_url: "{{ database_url }}"
    row_counts: true
    backup_dir: /var/backups/prisma
  register: __target

- name: Read it, audit its history and run prisma migrate status and validate, side by side
  prisma_database_info:
    database_url: "{{ database_url }}"
    project_dir: /srv/app
    migrate_status:
      validate: true
  register: __target
"""

RETURN = r"""
database:
  description: The database connected to.
  returned: success
  type: str
  sample: app
host:
  description: The host from the URL.
  returned: success
  type: str
port:
  description: The port from the URL.
  returned: success
  type: int
schema:
  description: The Prisma schema (the URL's C(schema) parameter, default C(public)).
  returned: success
  type: str
url_display:
  description: The URL with its password masked.
  returned: success
  type: str
server_version:
  description: The server's C(server_version).
  returned: success
  type: str
  sample: "15.18 (Debian 15.18-0+deb12u1)"
server_major:
  description: The server's major version.
  returned: success
  type: int
  sample: 15
system_identifier:
  description: C(pg_control_system().system_identifier) as text, or null when the role may not read it.
  returned: success
  type: str
size_bytes:
  description: C(pg_database_size) of the database.
  returned: success
  type: int
prisma_lock_holders:
  description: Sessions holding or waiting for Prisma's advisory lock 72707369.
  returned: success
  type: list
  elements: dict
run_lock_holders:
  description: Sessions holding or waiting for this project's run lock.
  returned: success
  type: list
  elements: dict
managed:
  description: Whether the table C(_prisma_migrations) exists in the schema.
  returned: success
  type: bool
applied:
  description: Migrations finished and not rolled back, in order.
  returned: success
  type: list
  elements: str
tables:
  description: Row count per table of the schema - exact with I(row_counts), estimated with I(row_estimates).
  returned: success
  type: dict
pg_dump_major:
  description: Major version of the C(pg_dump) client on this host, or null when it is missing.
  returned: success
  type: int
backup_dir_free_bytes:
  description: Free bytes where snapshots go (only with I(backup_dir)).
  returned: success
  type: int
backup_dir_writable:
  description: Whether this user can write into I(backup_dir), or create it (only with I(backup_dir)).
  returned: success
  type: bool
user:
  description: The user the module ran as on the target (only with I(backup_dir)).
  returned: success
  type: str
checks:
  description: The results of I(checks) - C(name), C(ok), C(value), C(expect), C(error).
  returned: success
  type: list
  elements: dict
history:
  description:
    - With I(project_dir), the audit of the migration history - C(ok), C(problems), C(applied), C(pending),
      C(pending_checksums), C(failed_migrations), C(rolled_back), C(in_progress), C(checksum_mismatch),
      C(missing_locally), C(local) and C(destructive), as M(prisma_migration_history_info) returns them.
  returned: when project_dir is given
  type: dict
migrate_status:
  description:
    - With I(migrate_status), what M(prisma_migrate_info) returns - C(state), C(pending), C(failed_migrations),
      C(summary), C(msg), C(command_rc), C(stdout), C(stderr), C(cmd), C(duration_s), C(validation) ...
  returned: when migrate_status is given
  type: dict
"""

import os
import pwd
import re

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_cli import PrismaCliError, StatusRun, check_project
from ansible.module_utils.prisma_history import local_migrations, read_history
from ansible.module_utils.prisma_pg import (
    PRISMA_ADVISORY_LOCK,
    RUN_LOCK_KEY,
    client_tools,
    explain_psql_error,
    lock_holders_sql,
    psql_env,
    psql_json,
    quote_ident,
    quote_literal,
    row_counts_sql,
    target_connection,
)
from ansible.module_utils.prisma_status import NEXT_STEP, parse_migrate_status
from ansible.module_utils.prisma_url import redact
from ansible.module_utils.sql_scan import scan_migrations


def _nearest_existing(path):
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path or "/"


def _free_bytes(path):
    st = os.statvfs(_nearest_existing(path))
    return st.f_bavail * st.f_frsize


def _user_name():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return f"uid {os.geteuid()}"


def _writable(path):
    """Whether this user can write snapshots into path, creating it if needed."""
    existing = _nearest_existing(path)
    return os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)


def read(module, p, conn, migrations_dir, result, fail):
    """Everything the module reads from the database and the host, into result."""
    result.update(
        database=conn["database"],
        host=conn["host"],
        port=conn["port"],
        schema=conn["schema"],
        url_display=conn["display"],
    )
    psql = client_tools(module, p, ["psql"], fail)["psql"]

    schema_lit = quote_literal(conn["schema"])
    table = f"{quote_ident(conn['schema'])}.{quote_ident('_prisma_migrations')}"
    sql = f"""
SELECT json_build_object(
  'server_version', current_setting('server_version'),
  'server_version_num', current_setting('server_version_num')::int,
  'system_identifier', CASE WHEN has_function_privilege('pg_control_system()', 'execute')
                            THEN (SELECT system_identifier::text FROM pg_control_system()) END,
  'database', current_database(),
  'size_bytes', pg_database_size(current_database()),
  'prisma_lock_holders', ({lock_holders_sql(PRISMA_ADVISORY_LOCK)}),
  'run_lock_holders', ({lock_holders_sql(RUN_LOCK_KEY)}),
  'managed', to_regclass({quote_literal(table)}) IS NOT NULL,
  'schema_exists', EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {schema_lit})
)"""
    info = psql_json(module, psql, conn, sql, fail, p["connect_timeout"])
    result.update(
        server_version=info["server_version"],
        server_major=info["server_version_num"] // 10000,
        system_identifier=info["system_identifier"],
        size_bytes=info["size_bytes"],
        prisma_lock_holders=info["prisma_lock_holders"],
        run_lock_holders=info["run_lock_holders"],
        managed=info["managed"],
        schema_exists=info["schema_exists"],
        applied=[],
        tables={},
    )
    if info["managed"]:
        result["applied"] = psql_json(
            module,
            psql,
            conn,
            "SELECT coalesce(json_agg(migration_name ORDER BY finished_at, migration_name), '[]') FROM "
            f"{table} WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
            fail,
            p["connect_timeout"],
        )
    if p["row_counts"]:
        result["tables"] = psql_json(module, psql, conn, row_counts_sql(conn["schema"]), fail, p["connect_timeout"])
    elif p["row_estimates"]:
        result["tables"] = psql_json(
            module,
            psql,
            conn,
            "SELECT coalesce(json_object_agg(t.relname, greatest(t.reltuples, 0)::bigint), '{}'::json)"
            " FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace"
            f" WHERE n.nspname = {quote_literal(conn['schema'])} AND t.relkind IN ('r', 'p')",
            fail,
            p["connect_timeout"],
        )

    result["checks"] = []
    for index, check in enumerate(p["checks"]):
        name = str(check.get("name") or f"check {index + 1}")
        if not check.get("sql") or "expect" not in check:
            fail(f"validation check '{name}' needs both sql and expect")
        env = psql_env(conn, p["connect_timeout"], app="prisma-validation")
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c default_transaction_read_only=on").strip()
        argv = [
            psql,
            "--no-psqlrc",
            "--quiet",
            "--tuples-only",
            "--no-align",
            "-v",
            "ON_ERROR_STOP=1",
            "-c",
            check["sql"],
        ]
        rc, out, err = module.run_command(argv, environ_update=env, check_rc=False)
        value = out.strip().splitlines()[0] if rc == 0 and out.strip() else None
        error = None if rc == 0 else explain_psql_error(err, conn)
        result["checks"].append(
            {"name": name, "ok": rc == 0 and value == str(check["expect"]), "value": value,
             "expect": str(check["expect"]), "error": error}
        )  # fmt: skip

    if migrations_dir:
        _table, _managed, history = read_history(
            module, psql, conn, local_migrations(migrations_dir), fail, p["connect_timeout"], app="prisma-history"
        )
        history["failed_migrations"] = history.pop("failed")
        history["destructive"] = scan_migrations(p["project_dir"], migrations_dir, history["pending"])
        result["history"] = history

    result["pg_dump_major"] = None
    pg_dump = module.get_bin_path(p["pg_dump"], required=False)
    if pg_dump:
        rc, out, _err = module.run_command([pg_dump, "--version"], check_rc=False)
        m = re.search(r"(\d+)(?:\.\d+)?", out or "")
        if rc == 0 and m:
            result["pg_dump_major"] = int(m.group(1))
    if p["backup_dir"]:
        result["backup_dir_free_bytes"] = _free_bytes(p["backup_dir"])
        result["backup_dir_writable"] = _writable(p["backup_dir"])
        result["user"] = _user_name()
    result["msg"] = (
        f"database {conn['database']} on {conn['host']}:{conn['port']} answers"
        f" (PostgreSQL {result['server_major']}, {result['size_bytes']} bytes)"
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "database_url": {"type": "str", "no_log": True},
            "row_counts": {"type": "bool", "default": False},
            "row_estimates": {"type": "bool", "default": False},
            "backup_dir": {"type": "path"},
            "checks": {"type": "list", "elements": "dict", "default": []},
            "project_dir": {"type": "path"},
            "migrate_status": {
                "type": "dict",
                "options": {
                    "command": {"type": "str", "default": "prisma"},
                    "environment": {"type": "dict", "default": {}},
                    "validate": {"type": "bool", "default": False},
                    "timeout": {"type": "int", "default": 120},
                },
            },
            "psql": {"type": "str", "default": "psql"},
            "pg_dump": {"type": "str", "default": "pg_dump"},
            "connect_timeout": {"type": "int", "default": 10},
        },
        required_by={"migrate_status": "project_dir"},
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False}
    url = p["database_url"] or os.environ.get("DATABASE_URL")
    prisma = None  # the Prisma commands running side by side, stopped on any failure

    def fail(msg):
        if prisma:
            prisma.stop()
        result["msg"] = redact(msg, url)
        module.fail_json(**result)

    conn = target_connection(url, fail)
    migrations_dir = None
    if p["project_dir"]:
        try:
            migrations_dir = check_project(p["project_dir"])
        except PrismaCliError as exc:
            fail(str(exc))
    status = p["migrate_status"]
    if status:
        if "DATABASE_URL" in status["environment"]:
            fail("migrate_status.environment must not carry DATABASE_URL (it is not secret there): pass database_url")
        try:
            prisma = StatusRun(module, project_dir=p["project_dir"], database_url=p["database_url"], **status)
        except PrismaCliError as exc:
            fail(str(exc))
    try:
        read(module, p, conn, migrations_dir, result, fail)
    except BaseException:  # fail_json's exit, or anything unexpected: never leave Prisma running
        if prisma:
            prisma.stop()
        raise
    if prisma:
        facts, problem = prisma.collect(parse_migrate_status, lambda text: redact(text, url))
        prisma = None
        facts["msg"] = problem or f"{facts['summary']}; next: {NEXT_STEP[facts['state']]}"
        result["migrate_status"] = facts
        if problem:
            fail(problem)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
