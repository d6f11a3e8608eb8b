"""What prisma_database_info reads, one function per group of facts.

The module reads everything in one run (with ``prisma migrate status`` started
beside it), and its first database round trip is one query assembled from the
groups' columns (``first_read_sql``): identity, size, sessions and whether
Prisma manages the schema cost one connection together.

No Ansible import: the functions are given the ``AnsibleModule`` (its public
methods only), ``query(sql)`` - runs one query returning one JSON value, or
fails - and ``fail(msg)``.
"""

from __future__ import annotations

import os
import pwd
import re

try:
    from ansible.module_utils import prisma_history, prisma_pg, prisma_snapshots
except ImportError:  # unit tests import the file directly
    import prisma_history
    import prisma_pg
    import prisma_snapshots


# --- identity: which database this is ---------------------------------------


def identity_columns(conn: dict) -> dict:
    return {
        "server_version": "current_setting('server_version')",
        "server_version_num": "current_setting('server_version_num')::int",
        "system_identifier": "CASE WHEN has_function_privilege('pg_control_system()', 'execute')"
        " THEN (SELECT system_identifier::text FROM pg_control_system()) END",
        "schema_exists": f"EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {prisma_pg.quote_literal(conn['schema'])})",
    }


def url_identity(conn: dict) -> dict:
    """What the URL names, known before any connection."""
    return {
        "database": conn["database"],
        "host": conn["host"],
        "port": conn["port"],
        "schema": conn["schema"],
        "url_display": conn["display"],
    }


def identity(row: dict) -> dict:
    """What the server says it is, from the first read."""
    return {
        "server_version": row["server_version"],
        "server_major": row["server_version_num"] // 10000,
        "system_identifier": row["system_identifier"],
        "schema_exists": row["schema_exists"],
    }


# --- sizes: the database's size and its tables' rows ------------------------


SIZE_COLUMNS = {"size_bytes": "pg_database_size(current_database())"}


def row_estimates_sql(schema: str) -> str:
    """The planner's row estimate of every table in ``schema`` (0 when never analyzed), as one JSON object."""
    return (
        "SELECT coalesce(json_object_agg(t.relname, greatest(t.reltuples, 0)::bigint), '{}'::json)"
        " FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace"
        f" WHERE n.nspname = {prisma_pg.quote_literal(schema)} AND t.relkind IN ('r', 'p')"
    )


def sizes(row: dict, query, schema: str, row_counts: bool, row_estimates: bool) -> dict:
    """``size_bytes`` from the first read; ``tables`` counted, estimated, or empty."""
    tables = {}
    if row_counts:
        tables = query(prisma_pg.row_counts_sql(schema))
    elif row_estimates:
        tables = query(row_estimates_sql(schema))
    return {"size_bytes": row["size_bytes"], "tables": tables}


# --- live relation statistics: how big and how busy each table is now -------

# Every ordinary or partitioned table outside the system schemas, keyed "schema.name" (the way the
# parser names relations, plugins/module_utils/sql_plan.py): the planner's row estimate, its sizes,
# the writes counted so far, and how many other sessions hold a lock on it right now. Read-only.
RELATION_STATS_SQL = """
SELECT json_build_object('at', extract(epoch FROM clock_timestamp()), 'relations', coalesce(json_object_agg(
  n.nspname || '.' || c.relname, json_build_object(
    'rows', greatest(c.reltuples, 0)::bigint,
    'table_bytes', pg_table_size(c.oid),
    'index_bytes', pg_indexes_size(c.oid),
    'size_bytes', pg_total_relation_size(c.oid),
    'writes', coalesce(s.n_tup_ins + s.n_tup_upd + s.n_tup_del, 0),
    'sessions', (SELECT count(DISTINCT l.pid) FROM pg_locks l
                 WHERE l.relation = c.oid AND l.pid <> pg_backend_pid())
  )), '{}'::json))
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid
WHERE c.relkind IN ('r', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
"""

# The write rate is the difference of two samples at least this far apart (the second is taken after
# prisma migrate status finished, which the module waits for anyway).
RELATION_SAMPLE_SECONDS = 2.0


def relation_stats(first: dict, second: dict) -> dict:
    """The relations of the ``second`` sample, each with ``writes_per_s`` measured between the two."""
    elapsed = max(float(second["at"]) - float(first["at"]), 0.001)
    out = {}
    for name, now in (second.get("relations") or {}).items():
        before = (first.get("relations") or {}).get(name, now)
        stats = {k: v for k, v in now.items() if k != "writes"}
        stats["writes_per_s"] = round(max(int(now["writes"]) - int(before["writes"]), 0) / elapsed, 1)
        out[name] = stats
    return {"relations": out, "sampled_seconds": round(elapsed, 1)}


# --- locks and sessions: who holds Prisma's lock or this project's run lock --


SESSION_COLUMNS = {
    "prisma_lock_holders": f"({prisma_pg.lock_holders_sql(prisma_pg.PRISMA_ADVISORY_LOCK)})",
    "run_lock_holders": f"({prisma_pg.lock_holders_sql(prisma_pg.RUN_LOCK_KEY)})",
}


def sessions(row: dict) -> dict:
    return {"prisma_lock_holders": row["prisma_lock_holders"], "run_lock_holders": row["run_lock_holders"]}


# --- history: what Prisma applied, and the audit against the checkout -------


def history_columns(conn: dict) -> dict:
    return {
        "managed": f"to_regclass({prisma_pg.quote_literal(prisma_history.migrations_table(conn['schema']))}) IS NOT NULL"
    }


def history(row: dict, query, schema: str, audit: dict | None = None) -> dict:
    """``managed`` from the first read, ``applied`` when managed, and ``history``: the audit against the
    checkout (``prisma_history.audit_history``, shared with prisma_migration_history_info) or empty."""
    facts = {"managed": row["managed"], "applied": [], "history": audit or {}}
    if row["managed"]:
        facts["applied"] = query(prisma_history.applied_sql(prisma_history.migrations_table(schema)))
    return facts


# --- checks: the operator's read-only SQL checks ----------------------------


def run_checks(module, psql: str, conn: dict, checks: list, fail, connect_timeout: int = 10) -> list:
    """Run each ``{name, sql, expect}`` in a read-only transaction; its first column of the first row,
    as text, must equal ``expect`` as text."""
    results = []
    for index, check in enumerate(checks):
        name = str(check.get("name") or f"check {index + 1}")
        if not check.get("sql") or "expect" not in check:
            fail(f"validation check '{name}' needs both sql and expect")
        env = prisma_pg.psql_env(conn, connect_timeout, app="prisma-validation")
        env["PGOPTIONS"] = (env.get("PGOPTIONS", "") + " -c default_transaction_read_only=on").strip()
        argv = [psql, *prisma_pg.PSQL_ARGS, "-c", check["sql"]]
        rc, out, err = module.run_command(argv, environ_update=env, check_rc=False)
        value = out.strip().splitlines()[0] if rc == 0 and out.strip() else None
        error = None if rc == 0 else prisma_pg.explain_psql_error(err, conn)
        results.append(
            {"name": name, "ok": rc == 0 and value == str(check["expect"]), "value": value,
             "expect": str(check["expect"]), "error": error}
        )  # fmt: skip
    return results


# --- tools and space: pg_dump on this host, room for the snapshot -----------


def pg_dump_major(module, pg_dump: str):
    """Major version of the ``pg_dump`` client on this host, or None when it is missing."""
    path = module.get_bin_path(pg_dump, required=False)
    if not path:
        return None
    rc, out, _err = module.run_command([path, "--version"], check_rc=False)
    m = re.search(r"(\d+)(?:\.\d+)?", out or "")
    return int(m.group(1)) if rc == 0 and m else None


def user_name() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid without a passwd entry (containers)
        return f"uid {os.geteuid()}"


def writable(path: str) -> bool:
    """Whether this user can write snapshots into path, creating it if needed."""
    existing = prisma_snapshots.nearest_existing(path)
    return os.path.isdir(existing) and os.access(existing, os.W_OK | os.X_OK)


def tools_and_space(
    module, pg_dump: str, backup_dir, size_bytes: int, min_free_ratio: float = prisma_snapshots.SPACE_MARGIN
) -> dict:
    """``pg_dump_major``; the room a snapshot needs (``size_bytes`` x ``min_free_ratio``, the same rule
    prisma_snapshot refuses by) and, with ``backup_dir``, its free bytes, whether this user can write
    there and who that user is. Without ``backup_dir`` there is nothing to check: ``backup_dir_room``
    is true."""
    free = prisma_snapshots.free_bytes(backup_dir) if backup_dir else None
    needed, room = prisma_snapshots.room_for_snapshot(free, size_bytes, min_free_ratio)
    return {
        "pg_dump_major": pg_dump_major(module, pg_dump),
        "backup_dir_free_bytes": free,
        "backup_dir_needed_bytes": needed,
        "backup_dir_room": room,
        "backup_dir_writable": writable(backup_dir) if backup_dir else None,
        "user": user_name() if backup_dir else None,
    }


# --- the first read ---------------------------------------------------------


def first_read_sql(conn: dict) -> str:
    """One query for the columns of the groups that need the first read."""
    columns = {
        **identity_columns(conn),
        **SIZE_COLUMNS,
        **SESSION_COLUMNS,
        **history_columns(conn),
    }
    pairs = ",\n".join(f"  {prisma_pg.quote_literal(name)}, {sql}" for name, sql in columns.items())
    return f"SELECT json_build_object(\n{pairs}\n)"
