#!/usr/bin/python
"""Ansible module: prisma_database_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_database_info
short_description: Check that a Prisma target database answers, and read what a migration run needs
description:
  - Connects with C(psql) to I(database_url) and returns the server version, the cluster's system
    identifier, the database size, the sessions holding Prisma's advisory lock 72707369 or this
    project's run lock, the applied migrations and, optionally, the exact row count of every table
    in the Prisma schema.
  - Fails with one line saying what is wrong and what to do when the server cannot be reached,
    the password is wrong or the database does not exist (C(prisma migrate deploy) would silently
    create a missing database).
  - Also reports the major version of the C(pg_dump) client on this host, the free space where
    snapshots are written and whether it is enough by the rule M(prisma_snapshot) refuses by
    (I(min_free_ratio)).
  - With I(migrate_status), cross-checks what Prisma printed against what the module read, for the preflight to
    decide on - never a failure of the module itself - I(datasource_check) (the database, schema, host and port
    Prisma says it reads against the URL's) and, with the history audit, I(pending_check) (Prisma's pending list
    against the audit's, name by name, whatever characters the folder names hold).
  - One module run - the reads are grouped in C(module_utils/prisma_facts.py) (identity, sizes, locks
    and sessions, history, checks, tools and space) and the first of them is one query.
  - Read-only; C(changed) is always false and it runs in check mode.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
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
  relation_stats:
    description:
      - Also read how big and how busy every table of the database is (outside the system schemas), for the
        gate's estimate of how long a migration statement blocks the application (M(prisma_migration_plan));
        C(relations). Two samples of C(pg_stat_user_tables) at least 2 s apart (the second after I(migrate_status)
        finished) give the write rate. Read-only.
    type: bool
    default: false
  backup_dir:
    description:
      - Report the free bytes of the file system holding this folder (or its nearest existing parent), whether
        this user can write there, and whether a snapshot has room (I(backup_dir_room)).
    type: path
  dump_probe:
    description:
      - Measure what bounds a C(pg_dump) of this database into I(backup_dir) on this host, and how long one would
        take (I(dump_limits)) - from 64 MiB, after I(migrate_status) finished, in a few seconds; the same probe
        as M(prisma_snapshot)'s C(compress=auto). Read-only for the database; it writes 32 MiB into I(backup_dir)
        (or its nearest existing parent), syncs and removes them. With I(migrate_status), only when migrations
        are pending (no snapshot comes otherwise).
      - C(format), C(jobs) and C(compress) are the snapshot's settings (C(auto) or a level).
    type: dict
    suboptions:
      format:
        description: The snapshot's format (C(auto), C(custom) or C(directory)).
        type: str
        default: auto
      jobs:
        description: The snapshot's jobs.
        type: int
        default: 1
      compress:
        description: The snapshot's compression, C(auto) or 0 to 9.
        type: raw
        default: auto
  min_free_ratio:
    description:
      - The room a snapshot needs, as a multiple of the database size (I(backup_dir_needed_bytes)). The same
        rule and default as M(prisma_snapshot)'s I(min_free_ratio); give both the same value.
    type: float
    default: 1.2
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
  description: The database connected to (from the URL).
  returned: always
  type: str
  sample: app
host:
  description: The host from the URL.
  returned: always
  type: str
port:
  description: The port from the URL.
  returned: always
  type: int
schema:
  description: The Prisma schema (the URL's C(schema) parameter, default C(public)).
  returned: always
  type: str
url_display:
  description: The URL with its password masked.
  returned: always
  type: str
server_version:
  description: The server's C(server_version); null until the database answered.
  returned: always
  type: str
  sample: "15.18 (Debian 15.18-0+deb12u1)"
server_major:
  description: The server's major version; null until the database answered.
  returned: always
  type: int
  sample: 15
system_identifier:
  description: C(pg_control_system().system_identifier) as text, or null when the role may not read it.
  returned: always
  type: str
schema_exists:
  description: Whether the schema exists in the database; null until the database answered.
  returned: always
  type: bool
size_bytes:
  description: C(pg_database_size) of the database; null until the database answered.
  returned: always
  type: int
prisma_lock_holders:
  description: Sessions holding or waiting for Prisma's advisory lock 72707369.
  returned: always
  type: list
  elements: dict
run_lock_holders:
  description: Sessions holding or waiting for this project's run lock.
  returned: always
  type: list
  elements: dict
managed:
  description: Whether the table C(_prisma_migrations) exists in the schema; null until the database answered.
  returned: always
  type: bool
applied:
  description: Migrations finished and not rolled back, in order.
  returned: always
  type: list
  elements: str
tables:
  description:
    - Row count per table of the schema - exact with I(row_counts), estimated with I(row_estimates); empty
      without either.
  returned: always
  type: dict
relations:
  description:
    - With I(relation_stats), every table keyed C(schema.name) - C(rows) (the planner's estimate), C(table_bytes),
      C(index_bytes), C(size_bytes) (total), C(writes_per_s) (rows inserted, updated or deleted per second between
      the two samples) and C(sessions) (other sessions holding a lock on it now). Empty without it.
  returned: always
  type: dict
  sample: {"public.orders": {"rows": 1000000, "table_bytes": 73728000, "index_bytes": 22487040,
           "size_bytes": 96215040, "writes_per_s": 12.5, "sessions": 1}}
relations_sampled_seconds:
  description: Seconds between the two samples of the write counters; null without I(relation_stats).
  returned: always
  type: float
pg_dump_major:
  description: Major version of the C(pg_dump) client on this host, or null when it is missing.
  returned: always
  type: int
backup_dir_free_bytes:
  description: Free bytes where snapshots go; null without I(backup_dir).
  returned: always
  type: int
backup_dir_needed_bytes:
  description: The free bytes a snapshot needs - I(size_bytes) times I(min_free_ratio), rounded up.
  returned: always
  type: int
  sample: 1288490189
backup_dir_room:
  description:
    - Whether I(backup_dir_free_bytes) is at least I(backup_dir_needed_bytes) - the rule M(prisma_snapshot)
      refuses by. True without I(backup_dir) (nothing to check).
  returned: always
  type: bool
  sample: true
dump_limits:
  description:
    - With I(dump_probe) on 64 MiB or more - the read, write and bound rates in bytes of C(COPY) text per second,
      each compression level's CPU rate, ratio and projected rate, C(compress) (the level the snapshot will use),
      C(copy_bytes) and C(estimate_s), the dump's estimated seconds at that level (as M(prisma_snapshot)'s
      I(limits)). Empty otherwise.
  returned: always
  type: dict
backup_dir_writable:
  description: Whether this user can write into I(backup_dir), or create it; null without I(backup_dir).
  returned: always
  type: bool
user:
  description: The user the module ran as on the target; null without I(backup_dir).
  returned: always
  type: str
checks:
  description: The results of I(checks) - C(name), C(ok), C(value), C(expect), C(error).
  returned: always
  type: list
  elements: dict
history:
  description:
    - With I(project_dir), the audit of the migration history - C(ok), C(problems), C(applied), C(pending),
      C(pending_checksums), C(failed_migrations), C(rolled_back), C(in_progress), C(checksum_mismatch),
      C(missing_locally), C(local), C(pending_sql) and C(squawk_config), as M(prisma_migration_history_info) returns them
      (the same function). Empty without I(project_dir).
  returned: always
  type: dict
migrate_status:
  description:
    - With I(migrate_status), what M(prisma_migrate_info) returns - C(state), C(pending), C(failed_migrations),
      C(summary), C(msg), C(command_rc), C(stdout), C(stderr), C(cmd), C(duration_s), C(validation) ...
      Empty without I(migrate_status).
  returned: always
  type: dict
datasource_check:
  description:
    - 'With I(migrate_status), whether the database C(prisma migrate status) says it reads (its line
      C(Datasource "db": PostgreSQL database "X", schema "S" at "H:P")) is the one I(database_url) names -
      the database the snapshot, the run lock and the identity pins see. The module does not fail on it; the
      preflight stops the run when C(ok) is false.'
    - C(ok); C(compared) and C(not_compared), the parts (C(database), C(schema), C(host), C(port)) Prisma printed
      and did not print - with a driver adapter Prisma 6 prints C(using driver adapter "...") and no host and port,
      and the database and schema of C(schema.prisma)'s C(url) or C(directUrl), not the adapter's connection;
      C(differences); C(prisma) (what Prisma printed - C(provider), C(database) percent-decoded, C(schema) or
      C(schemas), C(host), C(port), C(adapter)) or null when it printed no such line; C(url) (the URL's
      C(database), C(schema), C(host), C(port)); C(note) (why a part was not compared) and C(msg) (one line naming
      both sides, never the URL's text). An absent port is 5432; host names compare case-insensitively, and
      C(localhost), C(127.0.0.1) and C(::1) are different hosts.
    - Empty without I(migrate_status).
  returned: always
  type: dict
  sample:
    ok: true
    compared: [database, schema]
    not_compared: [host, port]
    differences: []
    prisma: {provider: PostgreSQL, database: app, schema: public, schemas: null, host: null, port: null,
             adapter: "@prisma/adapter-pg"}
    url: {database: app, schema: public, host: 127.0.0.1, port: 5432}
    note: with the driver adapter "@prisma/adapter-pg" Prisma prints no host and port ...
    msg: prisma migrate status reads database "app", schema "public", as the URL does; compared - database, schema ...
pending_check:
  description:
    - With I(migrate_status) and I(project_dir), whether the pending migrations C(prisma migrate status) lists
      (what the gate shows) are those the audit of C(_prisma_migrations) against the checkout's folders finds
      (I(history.pending), what the deploy applies) - names compared exactly, as sets. Compared only when Prisma's
      state is C(pending) or C(up_to_date). The module does not fail on it; the preflight stops the run when
      C(ok) is false.
    - C(ok), C(compared), C(only_in_prisma), C(only_in_audit) and C(msg) (one line with both lists). Empty without
      I(migrate_status).
  returned: always
  type: dict
  sample:
    ok: false
    compared: true
    only_in_prisma: []
    only_in_audit: [20240210090000_add_order_item_foreign_keys]
    msg: prisma migrate status lists 0 pending migration(s) (none) but the audit of _prisma_migrations ...
prisma_version:
  description:
    - With I(project_dir), the Prisma CLI the checkout installed, read from C(node_modules/prisma/package.json)
      (no process started) - C(version), C(major), C(path), C(supported) (5 to 7), C(tested) (6 and 7),
      C(config_file) (the Prisma config file the CLI loads in I(project_dir), or null) and C(msg) (one line
      saying what to do when it is not supported or cannot be read). Empty without I(project_dir). With
      I(migrate_status) the module fails with C(msg), before running Prisma, when the version is not supported
      (Prisma 8 has no C(migrate deploy)) or cannot be read, and on Prisma 7 or later when there is no config
      file and I(migrate_status.command) names none with C(--config) (Prisma 7 reads the datasource URL only
      from it).
  returned: always
  type: dict
  sample:
    version: 7.10.1
    major: 7
    path: /srv/app/node_modules/prisma/package.json
    supported: true
    tested: true
    config_file: /srv/app/prisma.config.ts
    msg: ""
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_cli import (
    PrismaCliError,
    StatusRun,
    check_project,
    config_problem,
    hide_from_result,
    prisma_version,
)
from ansible.module_utils.prisma_connection import connect, connection_argument_spec, refuse_url_in_environment
from ansible.module_utils.prisma_dump_rates import compress_option, measure_limits
from ansible.module_utils.prisma_facts import (
    RELATION_SAMPLE_SECONDS,
    RELATION_STATS_SQL,
    first_read_sql,
    history,
    identity,
    relation_stats,
    run_checks,
    sessions,
    sizes,
    tools_and_space,
    url_identity,
)
from ansible.module_utils.prisma_history import audit_history, compare_pending
from ansible.module_utils.prisma_pg import client_tools, psql_json
from ansible.module_utils.prisma_snapshots import SPACE_MARGIN, choose_format
from ansible.module_utils.prisma_status import NEXT_STEP, datasource_check, parse_datasource, parse_migrate_status
from ansible.module_utils.prisma_url import env_secrets, redact


def read(module, p, conn, migrations_dir, fail):
    """Every group of facts, read in this order; the first read is one query."""
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    timeout = p["connect_timeout"]

    def query(sql):
        return psql_json(module, psql, conn, sql, fail, timeout)

    row = query(first_read_sql(conn))
    facts = {**identity(row), **sessions(row)}
    if p["relation_stats"]:
        facts["_relations_first"] = query(RELATION_STATS_SQL)  # the second sample: relation_sample()
    facts.update(sizes(row, query, conn["schema"], p["row_counts"], p["row_estimates"]))
    facts["checks"] = run_checks(module, psql, conn, p["checks"], fail, timeout)
    audit = None
    if migrations_dir:
        _table, _managed, audit = audit_history(
            module, psql, conn, p["project_dir"], migrations_dir, fail, timeout, app="prisma-history"
        )
    facts.update(history(row, query, conn["schema"], audit))
    facts.update(tools_and_space(module, p["pg_dump"], p["backup_dir"], facts["size_bytes"], p["min_free_ratio"]))
    return facts


def relation_sample(module, p, conn, first: dict, fail) -> dict:
    """The second sample of the relation statistics, at least RELATION_SAMPLE_SECONDS after the first."""
    import time

    psql = client_tools(module, p, ["psql"], fail)["psql"]
    second = psql_json(module, psql, conn, RELATION_STATS_SQL, fail, p["connect_timeout"])
    wait = RELATION_SAMPLE_SECONDS - (float(second["at"]) - float(first["at"]))
    if wait > 0:
        time.sleep(wait)
        second = psql_json(module, psql, conn, RELATION_STATS_SQL, fail, p["connect_timeout"])
    stats = relation_stats(first, second)
    return {"relations": stats["relations"], "relations_sampled_seconds": stats["sampled_seconds"]}


def dump_limits(module, p, conn, size_bytes: int, fail) -> dict:
    """What bounds the snapshot's pg_dump here, with the snapshot's own format, jobs and compression."""
    probe = p["dump_probe"]
    level = compress_option(probe["compress"], fail)
    _fmt, jobs = choose_format(probe["format"], probe["jobs"], size_bytes, os.cpu_count())
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    return measure_limits(
        module, psql, conn, p["backup_dir"], size_bytes, jobs, fail, None if level == "auto" else level
    )


def cross_checks(facts: dict, audit: dict, conn: dict) -> dict:
    """What Prisma's own output says against what the module read: the database it reads (its Datasource
    line against the URL's parts) and, with the history audit, its pending list against the audit's."""
    datasource = parse_datasource(facts["stdout"] + "\n" + facts["stderr"])
    checks = {
        "datasource_check": datasource_check(datasource, conn, facts["summary"] if facts["state"] == "error" else None)
    }
    checks["pending_check"] = compare_pending(facts, audit, conn["database"]) if audit else {}
    return checks


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "row_counts": {"type": "bool", "default": False},
            "row_estimates": {"type": "bool", "default": False},
            "relation_stats": {"type": "bool", "default": False},
            "backup_dir": {"type": "path"},
            "min_free_ratio": {"type": "float", "default": SPACE_MARGIN},
            "dump_probe": {
                "type": "dict",
                "options": {
                    "format": {"type": "str", "default": "auto", "choices": ["auto", "custom", "directory"]},
                    "jobs": {"type": "int", "default": 1},
                    "compress": {"type": "raw", "default": "auto"},
                },
            },
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
        required_by={"migrate_status": "project_dir", "dump_probe": "backup_dir"},
        supports_check_mode=True,
    )
    p = module.params
    env_secret_values = env_secrets((p["migrate_status"] or {}).get("environment"))
    hide_from_result(module, env_secret_values)
    result = {
        "changed": False,
        **dict.fromkeys(("database", "host", "port", "schema", "url_display"), None),
        **dict.fromkeys(("server_version", "server_major", "system_identifier", "schema_exists"), None),
        "size_bytes": None,
        "tables": {},
        "relations": {},
        "relations_sampled_seconds": None,
        "prisma_lock_holders": [],
        "run_lock_holders": [],
        "managed": None,
        "applied": [],
        "history": {},
        "checks": [],
        "pg_dump_major": None,
        **dict.fromkeys(("backup_dir_free_bytes", "backup_dir_needed_bytes", "backup_dir_room"), None),
        "backup_dir_writable": None,
        "dump_limits": {},
        "user": None,
        "migrate_status": {},
        "datasource_check": {},
        "pending_check": {},
        "prisma_version": {},
    }
    prisma = None  # the Prisma commands running side by side, stopped on any failure

    def fail(msg):
        if prisma:
            prisma.stop()
        module.fail_json(msg=redact(msg, p["database_url"], *env_secret_values), **result)

    conn = connect(p, fail)
    result.update(url_identity(conn))
    migrations_dir = None
    try:
        if p["project_dir"]:
            migrations_dir = check_project(p["project_dir"])
            result["prisma_version"] = prisma_version(p["project_dir"])
        if p["migrate_status"] and not result["prisma_version"]["supported"]:
            fail(result["prisma_version"]["msg"])  # before Prisma runs: Prisma 8 has no migrate status to parse
        if p["migrate_status"]:
            # Prisma 7 without a config file has no datasource URL at all: say why, before Prisma runs
            problem = config_problem(result["prisma_version"], p["project_dir"], p["migrate_status"]["command"])
            if problem:
                fail(problem)
        if p["migrate_status"]:
            refuse_url_in_environment(p["migrate_status"]["environment"], "migrate_status.environment", fail)
            prisma = StatusRun(
                module, project_dir=p["project_dir"], database_url=p["database_url"], **p["migrate_status"]
            )
    except PrismaCliError as exc:
        fail(str(exc))
    try:
        result.update(read(module, p, conn, migrations_dir, fail))
        first = result.pop("_relations_first", None)  # the first sample of the relation statistics
    except BaseException:  # fail_json's exit, or anything unexpected: never leave Prisma running
        if prisma:
            prisma.stop()
        raise
    msg = (
        f"database {conn['database']} on {conn['host']}:{conn['port']} answers"
        f" (PostgreSQL {result['server_major']}, {result['size_bytes']} bytes)"
    )
    if prisma:
        facts, problem = prisma.collect(parse_migrate_status, lambda text: redact(text, p["database_url"]))
        prisma = None
        facts["msg"] = problem or f"{facts['summary']}; next: {NEXT_STEP[facts['state']]}"
        result["migrate_status"] = facts
        result.update(cross_checks(facts, result["history"], conn))
        if problem:
            fail(problem)
    if first is not None:
        result.update(relation_sample(module, p, conn, first, fail))
    # after Prisma finished (its Node processes would take the CPU the probe measures), and only when a
    # snapshot is coming: something is pending, or nobody asked Prisma
    if p["dump_probe"] and (not p["migrate_status"] or result["migrate_status"].get("pending")):
        result["dump_limits"] = dump_limits(module, p, conn, result["size_bytes"], fail)
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
