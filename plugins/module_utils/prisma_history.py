"""Compare the ``_prisma_migrations`` table with the local migration files.

Pure standard-library Python (no Ansible import). Prisma records one row per
attempt to apply a migration; ``checksum`` is the SHA-256 hex of the
``migration.sql`` it applied.

Row meaning (Prisma's schema engine):

* ``finished_at`` set, ``rolled_back_at`` null: applied;
* ``rolled_back_at`` set: marked rolled back (``migrate resolve --rolled-back``);
* both null and ``logs`` set: failed (the engine wrote the error into ``logs``);
* both null and ``logs`` null: started and not finished (in progress, or the
  process died mid-way).
"""

from __future__ import annotations

import hashlib
import json
import os

HISTORY_QUERY = """
SELECT coalesce(json_agg(json_build_object(
    'name', migration_name,
    'checksum', checksum,
    'started_at', started_at,
    'finished_at', finished_at,
    'rolled_back_at', rolled_back_at,
    'has_logs', logs IS NOT NULL,
    'applied_steps_count', applied_steps_count
) ORDER BY started_at, migration_name), '[]'::json)
FROM {table}
"""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def migrations_table(schema: str) -> str:
    """Prisma's history table in ``schema``, quoted and schema-qualified."""
    return f"{quote_ident(schema)}.{quote_ident('_prisma_migrations')}"


def applied_sql(table: str) -> str:
    """JSON list of the migrations finished and not rolled back, in the order they finished."""
    return (
        "SELECT coalesce(json_agg(migration_name ORDER BY finished_at, migration_name), '[]') FROM "
        f"{table} WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
    )


def local_migrations(migrations_dir: str) -> dict[str, str]:
    """Map each local migration folder holding a migration.sql to its SHA-256."""
    found = {}
    for entry in sorted(os.listdir(migrations_dir)):
        sql = os.path.join(migrations_dir, entry, "migration.sql")
        if os.path.isfile(sql):
            with open(sql, "rb") as fh:
                found[entry] = hashlib.sha256(fh.read()).hexdigest()
    return found


def audit(rows: list[dict], local: dict[str, str]) -> dict:
    """Classify the history. ``rows`` as returned by HISTORY_QUERY."""
    applied: dict[str, str] = {}
    failed, rolled_back, in_progress = [], [], []
    for row in rows:
        name = row["name"]
        if row.get("rolled_back_at"):
            rolled_back.append(name)
        elif row.get("finished_at"):
            applied[name] = row.get("checksum") or ""
        elif row.get("has_logs"):
            failed.append(name)
        else:
            in_progress.append(name)
    # A rolled-back or failed attempt followed by a successful one is applied.
    rolled_back = _unique(n for n in rolled_back if n not in applied)
    failed = _unique(n for n in failed if n not in applied)
    in_progress = _unique(n for n in in_progress if n not in applied)
    blocked = set(failed) | set(in_progress)
    pending = [n for n in sorted(local) if n not in applied and n not in blocked]
    mismatch = sorted(n for n, checksum in applied.items() if n in local and local[n] != checksum)
    missing = sorted(n for n in applied if n not in local)
    result = {
        "applied": sorted(applied),
        "pending": pending,
        "failed": failed,
        "rolled_back": rolled_back,
        "in_progress": in_progress,
        "checksum_mismatch": mismatch,
        "missing_locally": missing,
        "local": sorted(local),
        "pending_checksums": {n: local[n] for n in pending},
    }
    result["ok"] = not (failed or in_progress or mismatch or missing)
    result["problems"] = describe_problems(result)
    return result


def _unique(names) -> list[str]:
    seen: list[str] = []
    for n in names:
        if n not in seen:
            seen.append(n)
    return seen


def describe_problems(r: dict) -> list[str]:
    """One line per problem, each saying what to do."""
    out = []
    if r["failed"]:
        out.append(
            f"failed migration(s) recorded in the database: {', '.join(r['failed'])}"
            " - restore the pre-migration snapshot (playbooks/rollback.yml) or repair by hand and resolve"
        )
    if r["in_progress"]:
        out.append(
            f"migration(s) started but never finished: {', '.join(r['in_progress'])}"
            " - is another deploy running? if not, treat as failed and restore the snapshot"
        )
    if r["checksum_mismatch"]:
        out.append(
            f"applied migration(s) edited locally since they were applied: {', '.join(r['checksum_mismatch'])}"
            " - restore the original migration.sql from version control; never edit an applied migration"
        )
    if r["missing_locally"]:
        out.append(
            f"migration(s) applied in the database but missing locally: {', '.join(r['missing_locally'])}"
            " - deploy the app version that contains them (the checkout is older than the database)"
        )
    return out


def read_history(module, psql: str, conn: dict, local: dict[str, str], fail, connect_timeout: int = 10, app: str = ""):
    """Read and audit ``_prisma_migrations`` of the target with psql.

    ``conn`` is a parsed URL (prisma_url); ``fail`` is called with one line on
    any error. Returns (table, managed, audit) - an unmanaged database (no
    table) is audited as empty.
    """
    table = migrations_table(conn["schema"])
    env = dict(conn["libpq_env"])
    env.setdefault("PGCONNECT_TIMEOUT", str(connect_timeout))
    env["PGAPPNAME"] = env.get("PGAPPNAME", app or "prisma-migration-history")

    def query(sql):
        argv = [psql, "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "-v", "ON_ERROR_STOP=1", "-c", sql]
        rc, out, err = module.run_command(argv, environ_update=env, check_rc=False)
        if rc != 0:
            message = (err or out).strip().splitlines()
            first = message[0] if message else f"exit {rc}"
            fail(
                f"cannot read {table} in database {conn['database']} on {conn['host']}:{conn['port']}: {first}"
                " - check the URL, the network path and the credentials"
            )
        return out.strip()

    literal = table.replace("'", "''")
    if query(f"SELECT to_regclass('{literal}') IS NOT NULL") != "t":
        return table, False, audit([], local)
    try:
        rows = json.loads(query(HISTORY_QUERY.format(table=table)) or "[]")
    except ValueError:
        fail(f"psql returned something that is not JSON while reading {table}")
    return table, True, audit(rows, local)


def audit_history(
    module, psql: str, conn: dict, project_dir: str, migrations_dir: str, fail, connect_timeout=10, app=""
):
    """The history audit both modules return (prisma_migration_history_info's result, prisma_database_info's
    ``history``): ``read_history`` of the checkout's migrations, ``failed`` named ``failed_migrations`` (a
    module result cannot carry ``failed``), the ``pending_sql`` of the pending migrations (read here, where the
    checkout is; parsed on the controller by prisma_migration_plan) and the app's ``squawk_config``.
    Returns (table, managed, facts)."""
    table, managed, facts = read_history(
        module, psql, conn, local_migrations(migrations_dir), fail, connect_timeout, app
    )
    facts["failed_migrations"] = facts.pop("failed")
    facts["pending_sql"] = pending_sql(project_dir, migrations_dir, facts["pending"])
    facts["squawk_config"] = _read_text(os.path.join(project_dir, ".squawk.toml"))
    return table, managed, facts


def _read_text(path: str):
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except FileNotFoundError:
        return None


def pending_sql(project_dir: str, migrations_dir: str, names) -> list[dict]:
    """``{name, file, sql}`` of each named migration, in order (``file`` relative to ``project_dir``)."""
    out = []
    for name in names:
        path = os.path.join(migrations_dir, name, "migration.sql")
        out.append({"name": name, "file": os.path.relpath(path, project_dir), "sql": _read_text(path) or ""})
    return out


def _quoted(names: list[str], limit: int = 10) -> str:
    """Names as JSON strings (a space at either end, a comma or a quote stays visible), at most ``limit``."""
    if not names:
        return "none"
    shown = ", ".join(json.dumps(n, ensure_ascii=False) for n in names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def compare_pending(status: dict, audit: dict, database: str = "") -> dict:
    """Does the pending list Prisma's ``migrate status`` printed (the gate shows it) name the migrations the
    audit of ``_prisma_migrations`` against the checkout's folders finds pending (the deploy applies them)?

    ``status`` as parse_migrate_status returns it (``state``, ``pending``); ``audit`` as ``audit`` returns it.
    Compared only when Prisma's state is ``pending`` or ``up_to_date`` (any other state stops the run on its
    own). Names compare exactly, as sets: the order is Prisma's (the deploy's). Returns ``ok``, ``compared``,
    ``only_in_prisma``, ``only_in_audit`` and ``msg`` (one line, both lists)."""
    prisma = list(status.get("pending") or [])
    ours = list(audit.get("pending") or [])
    state = status.get("state")
    result = {"ok": True, "compared": state in ("pending", "up_to_date"), "only_in_prisma": [], "only_in_audit": []}
    where = f" in database {database}" if database else ""
    if not result["compared"]:
        result["msg"] = f"not compared: prisma migrate status says {state}"
        return result
    in_prisma, in_audit = set(prisma), set(ours)
    result["only_in_prisma"] = _unique(n for n in prisma if n not in in_audit)
    result["only_in_audit"] = _unique(n for n in ours if n not in in_prisma)
    seen: set[str] = set()
    repeated = []
    for n in prisma:
        if n in seen and n not in repeated:
            repeated.append(n)
        seen.add(n)
    result["ok"] = not (result["only_in_prisma"] or result["only_in_audit"] or repeated)
    if result["ok"]:
        result["msg"] = f"prisma migrate status and the history audit{where} agree: {len(prisma)} pending"
        return result
    hints = []
    if set(result["only_in_audit"]) & set(audit.get("rolled_back") or []):
        hints.append(
            "a migration marked rolled back is applied again by migrate deploy but this Prisma does not list it"
        )
    if result["only_in_prisma"]:
        hints.append("a folder Prisma lists may have no migration.sql")
    if repeated:
        hints.append(f"Prisma listed {_quoted(repeated)} more than once")
    hints.append("check that Prisma reads this database (directUrl, prisma.config.ts, .env)")
    result["msg"] = (
        f"prisma migrate status lists {len(prisma)} pending migration(s) ({_quoted(prisma)}) but the audit of"
        f" _prisma_migrations{where} against the checkout's migration folders finds {len(ours)} ({_quoted(ours)});"
        f" only in Prisma's list: {_quoted(result['only_in_prisma'])}; only in the audit: "
        f"{_quoted(result['only_in_audit'])} - the gate would show one list and the deploy apply another: "
        + "; ".join(hints)
    )
    return result
