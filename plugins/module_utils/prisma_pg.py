"""Run psql / pg_dump from a module with the password in the environment only.

No Ansible import: functions take the ``AnsibleModule`` and use its public
methods, so the error mapping is unit-testable.
"""

from __future__ import annotations

import json
import os
import re
import subprocess

try:
    from ansible.module_utils.prisma_url import DatabaseUrlError, client_identity, parse_database_url, redact
except ImportError:  # unit tests import the file directly
    from prisma_url import DatabaseUrlError, client_identity, parse_database_url, redact

# How every psql call here runs: no ~/.psqlrc, bare values, stop at the first error.
PSQL_ARGS = ("--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "-v", "ON_ERROR_STOP=1")

PRISMA_ADVISORY_LOCK = 72707369  # the key `prisma migrate deploy` locks
# The key of this project's run lock: distinct from Prisma's, fixed so that
# every control machine uses the same one.
RUN_LOCK_KEY = 7270736900001


def advisory_lock_where(key: int, alias: str = "l") -> str:
    """SQL condition matching pg_locks rows of pg_advisory_lock(bigint key)."""
    return (
        f"{alias}.locktype = 'advisory' AND {alias}.classid = {(key >> 32) & 0xFFFFFFFF}"
        f" AND {alias}.objid = {key & 0xFFFFFFFF} AND {alias}.objsubid = 1"
        f" AND {alias}.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )


def lock_holders_sql(key: int) -> str:
    """JSON list of the sessions holding (or waiting for) an advisory lock."""
    return (
        "SELECT coalesce(json_agg(json_build_object('pid', a.pid, 'application_name', a.application_name,"
        " 'user', a.usename, 'client_addr', coalesce(a.client_addr::text, 'local socket'),"
        " 'backend_start', a.backend_start, 'granted', l.granted, 'state', a.state) ORDER BY a.backend_start), '[]')"
        f" FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE {advisory_lock_where(key)}"
    )


def describe_holders(holders: list) -> str:
    parts = []
    for h in holders or []:
        state = "holds" if h.get("granted") else "waits for"
        who = h.get("application_name") or "(no application_name)"
        parts.append(f"{who} (pid {h.get('pid')}, user {h.get('user')}, from {h.get('client_addr')},"
                     f" connected since {h.get('backend_start')}) {state} it")  # fmt: skip
    return "; ".join(parts) or "nobody"


_PSQL_ERRORS = (
    (re.compile(r"password authentication failed|no password supplied|authentication failed", re.I),
     "authentication failed for user {user}: check the password in DATABASE_URL / database_url (vault)"),
    (re.compile(r'database "[^"]*" does not exist', re.I),
     "database {database} does not exist on {host}:{port}: check the database name in the URL"
     " (prisma migrate deploy would silently create an empty one)"),
    (re.compile(r"could not translate host name|Name or service not known|nodename nor servname", re.I),
     "host {host} cannot be resolved: check the host in the URL and DNS on this host"),
    (re.compile(r"Connection refused|could not connect|timeout expired|No route to host|Connection timed out", re.I),
     "cannot reach the database server at {host}:{port}: check that it is running and reachable from this host"),
    (re.compile(r"certificate verify failed|does not match host name|certificate has expired|not yet valid", re.I),
     "the TLS certificate of {host}:{port} was not accepted: check that sslcert (or sslrootcert) names the CA that"
     " signed the server's certificate and that the URL's host is named in that certificate"),
    (re.compile(r"SSL", re.I), "TLS negotiation with {host}:{port} failed: check sslmode and certificates in the URL"),
)  # fmt: skip


def first_line(text: str | None, fallback: str = "no error text") -> str:
    """The first non-empty line of a tool's stderr, for one-line messages."""
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[0][:300] if lines else fallback


def explain_psql_error(stderr: str, conn: dict, tool: str = "psql") -> str:
    """One line saying what is wrong and what to do, from psql's stderr."""
    for pattern, template in _PSQL_ERRORS:
        if pattern.search(stderr or ""):
            return template.format(**{k: conn.get(k) for k in ("user", "database", "host", "port")})
    # redact the whole text first: a cut at 300 characters must never fall inside the password
    return f"{tool} failed: {first_line(redact(stderr or '', conn.get('password'), *conn.get('secrets', [])))}"


def psql_env(conn: dict, connect_timeout: int = 10, app: str = "prisma-migrate-ops") -> dict:
    env = dict(conn["libpq_env"])
    env.setdefault("PGCONNECT_TIMEOUT", str(connect_timeout))
    env.setdefault("PGAPPNAME", app)
    return env


def run_psql(module, psql: str, conn: dict, sql: str, connect_timeout: int = 10, database: str | None = None):
    """Run one SQL string; return (rc, stdout, stderr). Never raises."""
    env = psql_env(conn, connect_timeout)
    if database:
        env["PGDATABASE"] = database
    argv = [psql, "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "-v", "ON_ERROR_STOP=1", "-c", sql]
    return module.run_command(argv, environ_update=env, check_rc=False)


def psql_json(module, psql: str, conn: dict, sql: str, fail, connect_timeout: int = 10):
    """Run a query returning one JSON value; on error call ``fail(message)``."""
    rc, out, err = run_psql(module, psql, conn, sql, connect_timeout)
    if rc != 0:
        fail(explain_psql_error(err, conn))
    try:
        return json.loads(out.strip() or "null")
    except ValueError:
        fail(f"psql returned something that is not JSON: {out.strip()[:100]}")
    return None


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def row_counts_sql(schema: str) -> str:
    """Exact row count of every table in ``schema`` as one JSON object."""
    lit = quote_literal(schema)
    return (
        "SELECT coalesce(json_object_agg(t.relname, "
        "(xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I', n.nspname, t.relname),"
        " false, true, '')))[1]::text::bigint), '{}'::json) "
        "FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace "
        f"WHERE n.nspname = {lit} AND t.relkind IN ('r', 'p')"
    )


def target_connection(url, fail, schema_dir=None) -> dict:
    """Parse the target URL for psql / pg_dump / pg_restore, or ``fail`` with one line naming what is
    wrong. ``schema_dir`` is the Prisma schema's folder (relative sslcert / sslidentity); a client
    identity (sslidentity) is converted for libpq (``prisma_url.client_identity``)."""
    try:
        conn = parse_database_url(url, schema_dir)
        client_identity(conn)
        return conn
    except DatabaseUrlError as exc:
        fail(f"database_url: {exc}")
    return {}


def client_tools(module, params: dict, names, fail) -> dict:
    """Resolve the PostgreSQL client programs named by these options, or ``fail``."""
    tools = {}
    for name in names:
        tools[name] = module.get_bin_path(params[name], required=False)
        if not tools[name]:
            fail(f"'{params[name]}' was not found on this host: install the PostgreSQL client (postgresql-client)")
    return tools


def open_session(psql: str, env: dict):
    """A psql session that reads statements on stdin and answers on stdout (text), the
    connection settings and password in its environment only."""
    return subprocess.Popen(
        [psql, *PSQL_ARGS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **env},
        text=True,
    )


def stop_child(proc) -> None:
    """Stop a child process and reap it: SIGTERM first (pg_dump --jobs and psql
    stop their own workers and sessions), SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
