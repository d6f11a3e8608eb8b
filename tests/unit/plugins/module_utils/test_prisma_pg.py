"""prisma_pg: libpq environment, psql error messages, lock SQL, quoting.

The stderr texts are what psql / pg_dump 16 print (and psql 12 for the old
``could not connect to server`` wording). The module is replaced by a small
stand-in with the two AnsibleModule methods the functions call.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from prisma_pg import (
    PRISMA_ADVISORY_LOCK,
    RUN_LOCK_KEY,
    advisory_lock_where,
    client_tools,
    describe_holders,
    explain_psql_error,
    first_line,
    lock_holders_sql,
    psql_env,
    psql_json,
    quote_ident,
    quote_literal,
    row_counts_sql,
    run_psql,
    stop_child,
    target_connection,
)
from prisma_url import parse_database_url

PASSWORD = "s3cr3t-pw"
URL = f"postgresql://app:{PASSWORD}@db.internal:5432/shop?schema=tenant_1&sslmode=require&connection_limit=5"
CONN = parse_database_url(URL)
SOCKET_CONN = parse_database_url(f"postgresql://app:{PASSWORD}@localhost/shop?host=/var/run/postgresql")
NO_USER_CONN = parse_database_url("postgresql://db.internal/shop")


class Failed(Exception):
    pass


def fail(msg):
    raise Failed(msg)


class Host:
    """The AnsibleModule methods prisma_pg uses: run_command and get_bin_path."""

    def __init__(self, rc=0, out="", err="", bins=None):
        self.answer = (rc, out, err)
        self.bins = bins or {}
        self.calls = []
        self.looked_up = []

    def run_command(self, argv, environ_update=None, check_rc=True):
        self.calls.append({"argv": argv, "environ_update": environ_update, "check_rc": check_rc})
        return self.answer

    def get_bin_path(self, name, required=False):
        self.looked_up.append((name, required))
        return self.bins.get(name)


# --- lock keys and SQL --------------------------------------------------------------------------


def test_lock_keys():
    assert PRISMA_ADVISORY_LOCK == 72707369  # the key prisma migrate deploy takes
    assert RUN_LOCK_KEY == 7270736900001
    assert RUN_LOCK_KEY != PRISMA_ADVISORY_LOCK


@pytest.mark.parametrize(
    ("key", "classid", "objid"),
    [
        (PRISMA_ADVISORY_LOCK, 0, 72707369),
        (RUN_LOCK_KEY, 1692, 3652235169),
        (0, 0, 0),
        (2**32, 1, 0),
        (-1, 4294967295, 4294967295),  # pg_locks shows a negative bigint's halves as unsigned oids
    ],
)
def test_advisory_lock_where_splits_the_bigint_key_as_pg_locks_shows_it(key, classid, objid):
    assert advisory_lock_where(key) == (
        f"l.locktype = 'advisory' AND l.classid = {classid} AND l.objid = {objid} AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    assert ((classid << 32) | objid) == key & 0xFFFFFFFFFFFFFFFF


def test_advisory_lock_where_alias():
    assert advisory_lock_where(PRISMA_ADVISORY_LOCK, "pl") == (
        "pl.locktype = 'advisory' AND pl.classid = 0 AND pl.objid = 72707369 AND pl.objsubid = 1"
        " AND pl.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )


def test_lock_holders_sql():
    assert lock_holders_sql(PRISMA_ADVISORY_LOCK) == (
        "SELECT coalesce(json_agg(json_build_object('pid', a.pid, 'application_name', a.application_name,"
        " 'user', a.usename, 'client_addr', coalesce(a.client_addr::text, 'local socket'),"
        " 'backend_start', a.backend_start, 'granted', l.granted, 'state', a.state) ORDER BY a.backend_start), '[]')"
        " FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.classid = 0"
        " AND l.objid = 72707369 AND l.objsubid = 1"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )


HOLDER = {
    "pid": 48213,
    "application_name": "prisma-run-lock alice run 20240301T090000-4711 db1.prod",
    "user": "app",
    "client_addr": "10.0.4.17/32",
    "backend_start": "2024-03-01T09:00:02.123456+00:00",
    "granted": True,
    "state": "idle",
}
WAITER = {
    "pid": 48377,
    "application_name": "",
    "user": "app",
    "client_addr": "local socket",
    "backend_start": "2024-03-01T09:01:40.5+00:00",
    "granted": False,
    "state": "active",
}


@pytest.mark.parametrize(
    ("holders", "text"),
    [
        (None, "nobody"),
        ([], "nobody"),
        (
            [HOLDER],
            "prisma-run-lock alice run 20240301T090000-4711 db1.prod (pid 48213, user app, from 10.0.4.17/32,"
            " connected since 2024-03-01T09:00:02.123456+00:00) holds it",
        ),
        (
            [HOLDER, WAITER],
            "prisma-run-lock alice run 20240301T090000-4711 db1.prod (pid 48213, user app, from 10.0.4.17/32,"
            " connected since 2024-03-01T09:00:02.123456+00:00) holds it; (no application_name) (pid 48377,"
            " user app, from local socket, connected since 2024-03-01T09:01:40.5+00:00) waits for it",
        ),
    ],
)
def test_describe_holders(holders, text):
    assert describe_holders(holders) == text


# --- quoting and row counts ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "quoted"),
    [("public", '"public"'), ("Order Items", '"Order Items"'), ('we"ird', '"we""ird"'), ("", '""')],
)
def test_quote_ident(name, quoted):
    assert quote_ident(name) == quoted


@pytest.mark.parametrize(
    ("value", "quoted"),
    [("tenant_1", "'tenant_1'"), ("O'Brien's", "'O''Brien''s'"), ("a\\b", "'a\\b'"), ("", "''")],
)
def test_quote_literal(value, quoted):
    assert quote_literal(value) == quoted


@pytest.mark.parametrize(("schema", "literal"), [("public", "'public'"), ("it's", "'it''s'")])
def test_row_counts_sql(schema, literal):
    assert row_counts_sql(schema) == (
        "SELECT coalesce(json_object_agg(t.relname, (xpath('/row/c/text()', query_to_xml(format("
        "'SELECT count(*) AS c FROM %I.%I', n.nspname, t.relname), false, true, '')))[1]::text::bigint), '{}'::json)"
        " FROM pg_class t JOIN pg_namespace n ON n.oid = t.relnamespace"
        f" WHERE n.nspname = {literal} AND t.relkind IN ('r', 'p')"
    )


# --- environment for libpq ----------------------------------------------------------------------


def test_psql_env_adds_timeout_and_application_name_to_the_url_s_settings():
    assert psql_env(CONN) == {
        "PGHOST": "db.internal",
        "PGPORT": "5432",
        "PGUSER": "app",
        "PGPASSWORD": PASSWORD,
        "PGDATABASE": "shop",
        "PGSSLMODE": "require",
        "PGCONNECT_TIMEOUT": "10",
        "PGAPPNAME": "prisma-migrate-ops",
    }
    assert psql_env(CONN, 3, app="prisma-validation")["PGCONNECT_TIMEOUT"] == "3"
    assert psql_env(CONN, 3, app="prisma-validation")["PGAPPNAME"] == "prisma-validation"


def test_psql_env_keeps_the_url_s_own_timeout_and_application_name():
    conn = parse_database_url("postgresql://app:pw@db.internal/shop?connect_timeout=3&application_name=billing")
    env = psql_env(conn, 30, app="prisma-snapshot")
    assert (env["PGCONNECT_TIMEOUT"], env["PGAPPNAME"]) == ("3", "billing")


def test_psql_env_does_not_change_the_connection():
    before = dict(CONN["libpq_env"])
    psql_env(CONN)["PGDATABASE"] = "postgres"
    assert CONN["libpq_env"] == before


# --- running psql -------------------------------------------------------------------------------


def test_run_psql_passes_sql_as_one_argument_and_the_password_only_in_the_environment():
    host = Host(rc=0, out="t\n")
    assert run_psql(host, "/usr/bin/psql", CONN, "SELECT pg_try_advisory_lock(1);", 5) == (0, "t\n", "")
    assert host.calls == [
        {
            "argv": [
                "/usr/bin/psql",
                "--no-psqlrc",
                "--quiet",
                "--tuples-only",
                "--no-align",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                "SELECT pg_try_advisory_lock(1);",
            ],
            "environ_update": psql_env(CONN, 5),
            "check_rc": False,
        }
    ]
    assert not any(PASSWORD in arg for arg in host.calls[0]["argv"])


def test_run_psql_on_another_database():
    host = Host()
    run_psql(host, "psql", CONN, "SELECT 1", database="postgres")
    assert host.calls[0]["environ_update"]["PGDATABASE"] == "postgres"
    assert CONN["libpq_env"]["PGDATABASE"] == "shop"


@pytest.mark.parametrize(
    ("out", "value"),
    [
        ('{"managed": true, "prisma_lock_holders": []}\n', {"managed": True, "prisma_lock_holders": []}),
        ('{"User": 3, "Post": 0}', {"User": 3, "Post": 0}),
        ("[]\n", []),
        ("", None),
        (" \n", None),
    ],
)
def test_psql_json_parses_the_one_value(out, value):
    assert psql_json(Host(rc=0, out=out), "psql", CONN, "SELECT 1", fail) == value


def test_psql_json_explains_a_psql_error():
    host = Host(
        rc=2,
        err='psql: error: connection to server at "db.internal" (10.0.0.5), port 5432 failed: FATAL:  password authentication failed for user "app"\n',
    )
    with pytest.raises(Failed) as exc:
        psql_json(host, "psql", CONN, "SELECT 1", fail)
    assert str(exc.value) == (
        "authentication failed for user app: check the password in DATABASE_URL / database_url (vault)"
    )


def test_psql_json_says_what_came_back_when_it_is_not_json():
    with pytest.raises(Failed) as exc:
        psql_json(Host(rc=0, out="Timing is on.\n" + "x" * 200), "psql", CONN, "SELECT 1", fail)
    assert str(exc.value) == "psql returned something that is not JSON: " + ("Timing is on.\n" + "x" * 200)[:100]


# --- error messages -----------------------------------------------------------------------------

AT = 'connection to server at "db.internal" (10.0.0.5), port 5432 failed:'


@pytest.mark.parametrize(
    ("stderr", "message"),
    [
        pytest.param(
            f'psql: error: {AT} FATAL:  password authentication failed for user "app"\n',
            "authentication failed for user app: check the password in DATABASE_URL / database_url (vault)",
            id="wrong-password",
        ),
        pytest.param(
            f"psql: error: {AT} fe_sendauth: no password supplied\n",
            "authentication failed for user app: check the password in DATABASE_URL / database_url (vault)",
            id="no-password",
        ),
        pytest.param(
            f'pg_dump: error: {AT} FATAL:  password authentication failed for user "app"\n',
            "authentication failed for user app: check the password in DATABASE_URL / database_url (vault)",
            id="pg-dump-wrong-password",
        ),
        pytest.param(
            f'psql: error: {AT} FATAL:  database "shop" does not exist\n',
            "database shop does not exist on db.internal:5432: check the database name in the URL"
            " (prisma migrate deploy would silently create an empty one)",
            id="database-missing",
        ),
        pytest.param(
            'psql: error: could not translate host name "db.internal" to address: Name or service not known\n',
            "host db.internal cannot be resolved: check the host in the URL and DNS on this host",
            id="dns",
        ),
        pytest.param(
            f"psql: error: {AT} Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?\n",
            "cannot reach the database server at db.internal:5432: check that it is running and reachable from this host",
            id="refused",
        ),
        pytest.param(
            f"psql: error: {AT} timeout expired\n",
            "cannot reach the database server at db.internal:5432: check that it is running and reachable from this host",
            id="timeout",
        ),
        pytest.param(
            "psql: could not connect to server: Connection timed out\n"
            '\tIs the server running on host "db.internal" (10.0.0.5) and accepting\n\tTCP/IP connections on port 5432?\n',
            "cannot reach the database server at db.internal:5432: check that it is running and reachable from this host",
            id="psql12-wording",
        ),
        pytest.param(
            f"psql: error: {AT} server does not support SSL, but SSL was required\n",
            "TLS negotiation with db.internal:5432 failed: check sslmode and certificates in the URL",
            id="server-without-tls",
        ),
        pytest.param(
            f'psql: error: {AT} root certificate file "/root/.postgresql/root.crt" does not exist\n'
            "Either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode"
            " to disable server certificate verification.\n",
            "TLS negotiation with db.internal:5432 failed: check sslmode and certificates in the URL",
            id="no-root-certificate",
        ),
        pytest.param(
            f'psql: error: {AT} FATAL:  no pg_hba.conf entry for host "10.0.4.17", user "app", database "shop", no encryption\n',
            f'psql failed: psql: error: {AT} FATAL:  no pg_hba.conf entry for host "10.0.4.17", user "app",'
            ' database "shop", no encryption',
            id="pg-hba-without-tls",
        ),
        pytest.param(
            "\nERROR:  permission denied for table _prisma_migrations\n",
            "psql failed: ERROR:  permission denied for table _prisma_migrations",
            id="other-error-first-line",
        ),
        pytest.param("", "psql failed: no error text", id="no-stderr"),
        pytest.param(None, "psql failed: no error text", id="stderr-none"),
    ],
)
def test_explain_psql_error(stderr, message):
    assert explain_psql_error(stderr, CONN) == message


def test_explain_psql_error_names_the_tool_when_it_cannot_explain():
    stderr = "pg_dump: error: aborting because of server version mismatch\npg_dump: detail: server version: 17.0\n"
    assert explain_psql_error(stderr, CONN, "pg_dump") == (
        "pg_dump failed: pg_dump: error: aborting because of server version mismatch"
    )


def test_explain_psql_error_redacts_the_password_and_urls():
    stderr = f'ERROR:  syntax error at or near "{PASSWORD}" in postgresql://other:hunter22@db/x\n'
    assert explain_psql_error(stderr, CONN) == (
        'psql failed: ERROR:  syntax error at or near "********" in postgresql://other:********@db/x'
    )


def leaking_line():
    """One stderr line whose 300-character cut falls inside the password."""
    prefix = 'ERROR:  value too long for type character varying(255): "'
    return prefix + "a" * (300 - len(prefix) - 5) + PASSWORD + '"\n'


def xfail(reason):
    return pytest.mark.xfail(strict=True, reason=reason)


@xfail("a local-socket connection failure (psql 14+ wording) is not recognised as an unreachable server")
def test_defect_socket_connection_failure_is_not_explained():
    stderr = (
        'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: No such file or directory\n'
        "\tIs the server running locally and accepting connections on that socket?\n"
    )
    assert explain_psql_error(stderr, SOCKET_CONN).startswith(
        "cannot reach the database server at /var/run/postgresql:5432"
    )


@xfail("a pg_hba.conf rejection of a TLS connection is reported as a TLS negotiation failure")
def test_defect_pg_hba_rejection_over_tls_is_called_a_tls_failure():
    stderr = f'psql: error: {AT} FATAL:  no pg_hba.conf entry for host "10.0.4.17", user "app", database "shop", SSL encryption\n'
    message = explain_psql_error(stderr, CONN)
    assert "TLS negotiation" not in message
    assert "pg_hba.conf" in message


@xfail("peer/ident authentication failures get the advice to check the password")
def test_defect_peer_authentication_is_told_to_check_the_password():
    stderr = 'psql: error: connection to server on socket "/var/run/postgresql/.s.PGSQL.5432" failed: FATAL:  Peer authentication failed for user "app"\n'
    assert "peer" in explain_psql_error(stderr, SOCKET_CONN).lower()


@xfail("a URL without a user gives 'authentication failed for user None'")
def test_defect_url_without_user_is_named_none():
    stderr = f'psql: error: {AT} FATAL:  password authentication failed for user "root"\n'
    assert "None" not in explain_psql_error(stderr, NO_USER_CONN)


def test_a_password_across_the_300_character_cut_never_leaks():
    message = explain_psql_error(leaking_line(), CONN)
    assert PASSWORD[:5] not in message


# --- first_line, target_connection, client_tools ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        (None, "no error text"),
        ("", "no error text"),
        ("\n  \n", "no error text"),
        ("\n\n  psql: error: x  \nDETAIL: y\n", "psql: error: x"),
        ("x" * 400, "x" * 300),
    ],
)
def test_first_line(text, line):
    assert first_line(text) == line


def test_first_line_fallback():
    assert first_line("", "unknown error") == "unknown error"


def test_target_connection_parses_the_url():
    conn = target_connection(URL, fail)
    assert (conn["host"], conn["port"], conn["database"], conn["schema"]) == ("db.internal", 5432, "shop", "tenant_1")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "database_url: the database URL is empty: set DATABASE_URL (or database_url) to a postgresql:// URL"),
        (
            f"mysql://app:{PASSWORD}@db/shop",
            "database_url: the database URL scheme is 'mysql', expected postgresql:// (this project migrates PostgreSQL)",
        ),
        (
            f"postgresql://app:{PASSWORD}@db.internal:5432",
            "database_url: the database URL names no database: expected postgresql://USER:PW@HOST:PORT/DB",
        ),
    ],
)
def test_target_connection_fails_naming_the_option(url, message):
    with pytest.raises(Failed) as exc:
        target_connection(url, fail)
    assert str(exc.value) == message


def test_target_connection_returns_nothing_if_fail_returns():
    messages = []
    assert target_connection("", messages.append) == {}
    assert len(messages) == 1


def test_client_tools_resolves_every_named_option():
    host = Host(
        bins={"psql": "/usr/bin/psql", "/usr/lib/postgresql/16/bin/pg_dump": "/usr/lib/postgresql/16/bin/pg_dump"}
    )
    params = {"psql": "psql", "pg_dump": "/usr/lib/postgresql/16/bin/pg_dump", "pg_restore": "pg_restore"}
    assert client_tools(host, params, ["psql", "pg_dump"], fail) == {
        "psql": "/usr/bin/psql",
        "pg_dump": "/usr/lib/postgresql/16/bin/pg_dump",
    }
    assert host.looked_up == [("psql", False), ("/usr/lib/postgresql/16/bin/pg_dump", False)]


def test_client_tools_fails_on_the_first_missing_program():
    host = Host(bins={"psql": "/usr/bin/psql"})
    with pytest.raises(Failed) as exc:
        client_tools(host, {"psql": "psql", "pg_restore": "pg_restore-16"}, ["psql", "pg_restore"], fail)
    assert str(exc.value) == (
        "'pg_restore-16' was not found on this host: install the PostgreSQL client (postgresql-client)"
    )


# --- stop_child ---------------------------------------------------------------------------------


def test_stop_child_terminates_a_running_child_and_reaps_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    stop_child(proc)
    assert proc.returncode == -signal.SIGTERM


def test_stop_child_leaves_a_finished_child_alone():
    proc = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    proc.wait()
    stop_child(proc)
    assert proc.returncode == 3


class StubbornChild:
    """A child that ignores SIGTERM: wait(timeout) expires once."""

    def __init__(self):
        self.calls = []

    def poll(self):
        self.calls.append("poll")

    def terminate(self):
        self.calls.append("terminate")

    def kill(self):
        self.calls.append("kill")

    def wait(self, timeout=None):
        self.calls.append(("wait", timeout))
        if timeout is not None:
            raise subprocess.TimeoutExpired("pg_dump", timeout)


def test_stop_child_kills_a_child_that_ignores_sigterm_after_10_seconds():
    child = StubbornChild()
    stop_child(child)
    assert child.calls == ["poll", "terminate", ("wait", 10), "kill", ("wait", None)]
