"""Issue 16 C: Prisma's own datasource line taken apart (real Prisma 6.19 and 7.10 forms, captured by
data/capture_names.py, and the forms other versions print) and compared with the URL the snapshot, the run
lock and the identity pins see."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prisma_status import datasource_check, parse_datasource
from prisma_url import parse_database_url

REAL = json.loads((Path(__file__).resolve().parent / "data" / "real-names.json").read_text())


def real(case: str) -> str:
    if case not in REAL:
        pytest.skip(f"{case} was not captured (the Prisma 7 fixture was not installed when capture_names.py ran)")
    return REAL[case]["stdout"] + "\n" + REAL[case]["stderr"]


# --- parse_datasource ----------------------------------------------------------------------------------

REAL_LINES = {
    # Prisma 6.19 with the driver adapter: no location; the database is schema.prisma's url (or directUrl).
    "prisma6-status-unusual-pending": {"database": "app", "schema": "public", "adapter": "@prisma/adapter-pg", "host": None},
    "prisma6-status-direct-url": {"database": "other", "schema": "public", "adapter": "@prisma/adapter-pg"},
    "prisma6-status-multi-schema": {"database": "app", "schema": None, "schemas": ["audit", "public"]},
    # Prisma 6.19 without an adapter: at "HOST:PORT" (host as in the URL, a socket's ?host= not shown).
    "prisma6-status-classic-ipv4": {"database": "app", "schema": "shop", "host": "127.0.0.1", "port": 5432, "adapter": None},
    "prisma6-status-classic-ipv6": {"database": "x y", "database_printed": "x%20y", "schema": "my schema", "host": "::1", "port": 5432},
    "prisma6-status-classic-no-port": {"database": "shop", "host": "DB.Example.COM", "port": None},
    "prisma6-status-classic-socket": {"database": "shop", "host": "localhost", "port": None},
    "prisma6-status-classic-no-host": {"database": None, "schema": None, "host": None, "provider": "PostgreSQL"},
    # Prisma 7.10: at "HOST:PORT" always.
    "prisma7-status-unusual-pending": {"database": "app", "schema": "public", "host": "127.0.0.1", "port": 5432},
    "prisma7-status-localhost": {"host": "localhost", "port": 5432},
    "prisma7-status-ipv6": {"host": "::1", "port": 5432, "location": "[::1]:5432"},
    "prisma7-status-no-port": {"host": "DB.Example.COM", "port": None},
    "prisma7-status-socket": {"database": "shop", "host": "localhost", "port": None},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REAL_LINES))
def test_real_datasource_lines(case):
    facts = parse_datasource(real(case))
    assert facts["provider"] == "PostgreSQL"
    assert facts["name"] == "db"
    assert facts["conflicting"] == []
    for key, value in REAL_LINES[case].items():
        assert facts[key] == value, (case, key, facts)


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('Datasource "db": PostgreSQL database "shop", schema "public" at "db.internal:5432"',
         {"database": "shop", "schema": "public", "host": "db.internal", "port": 5432}),
        ('Datasource "db": PostgreSQL database "shop", schema "public" at "[2001:db8::5]:6432"',
         {"host": "2001:db8::5", "port": 6432}),
        ('Datasource "db": PostgreSQL database "shop", schema "public" at "[2001:db8::5]"',
         {"host": "2001:db8::5", "port": None}),
        ('Datasource "db": PostgreSQL database "shop", schema "public" at "unix:/var/run/postgresql"',
         {"host": "/var/run/postgresql", "port": None}),
        ('Datasource "db": PostgreSQL database "shop", schema "public" at "/var/run/postgresql"',
         {"host": "/var/run/postgresql", "port": None}),
        ('Datasource "main": PostgreSQL database "caf%C3%A9", schema "a \\"b\\"" at "h:1"',
         {"name": "main", "database": "café", "database_printed": "caf%C3%A9", "schema": 'a \\"b\\"', "host": "h"}),
        ('Datasource "db": PostgreSQL database "shop", schemas "a, b, c" using driver adapter "@prisma/adapter-neon"',
         {"schemas": ["a", "b", "c"], "schema": None, "adapter": "@prisma/adapter-neon", "host": None}),
        ('Datasource "db": MySQL database "shop" at "localhost:3306"', {"provider": "MySQL", "schema": None, "port": 3306}),
        ('Datasource "db" - SQL Server', {"provider": "SQL Server", "database": None}),
        ('\x1b[2mDatasource "db": PostgreSQL database "shop", schema "s" at "h:5"\x1b[22m', {"database": "shop", "port": 5}),
    ],
    ids=["prisma7", "ipv6-port", "ipv6", "unix-socket", "socket-path", "encoded-db", "multi-schema-adapter",
         "mysql", "sqlserver-old", "dim"],
)  # fmt: skip
def test_datasource_forms(line, expected):
    facts = parse_datasource("Prisma schema loaded from prisma/schema.prisma\n" + line + "\n\n1 migration found\n")
    for key, value in expected.items():
        assert facts[key] == value, (key, facts)


def test_no_datasource_line():
    assert parse_datasource("Error: something else\n") is None
    assert parse_datasource("") is None


def test_a_datasource_lookalike_inside_a_list_is_not_the_datasource():
    text = (
        'Following migrations have not yet been applied:\n20240101_Datasource "db": PostgreSQL database "evil"\n\n'
        'Datasource "db": PostgreSQL database "shop", schema "public" at "h:5432"\n'
    )
    assert parse_datasource(text)["database"] == "shop"


# --- datasource_check ------------------------------------------------------------------------------------

URL = {"database": "shop", "schema": "public", "host": "127.0.0.1", "port": 5432}


def line(rest: str) -> dict:
    return parse_datasource(f'Datasource "db": PostgreSQL database {rest}\n')


@pytest.mark.parametrize(
    ("rest", "url", "differences", "compared"),
    [
        ('"shop", schema "public" at "127.0.0.1:5432"', {}, [], ["database", "schema", "host", "port"]),
        ('"shop", schema "public" at "127.0.0.1"', {}, [], ["database", "schema", "host", "port"]),  # 5432
        ('"other", schema "public" at "127.0.0.1:5432"', {}, ["database"], None),
        ('"shop", schema "tenant_2" at "127.0.0.1:5432"', {}, ["schema"], None),
        ('"shop", schema "public" at "127.0.0.1:6432"', {}, ["port"], None),
        ('"shop", schema "public" at "127.0.0.1"', {"port": 6432}, ["port"], None),
        # the host alone: localhost, 127.0.0.1 and ::1 are different hosts
        ('"shop", schema "public" at "localhost:5432"', {}, ["host"], None),
        ('"shop", schema "public" at "[::1]:5432"', {}, ["host"], None),
        ('"shop", schema "public" at "[::1]:5432"', {"host": "localhost"}, ["host"], None),
        ('"shop", schema "public" at "db-replica.internal:5432"', {"host": "db.internal"}, ["host"], None),
        ('"shop", schema "public" at "db.internal.:5432"', {"host": "db.internal"}, ["host"], None),
        # the same host written differently
        ('"shop", schema "public" at "DB.Internal:5432"', {"host": "db.internal"}, [], None),
        ('"shop", schema "public" at "[::1]:5432"', {"host": "::1"}, [], None),
        ('"shop", schema "public" at "[0:0:0:0:0:0:0:1]:5432"', {"host": "::1"}, [], None),
        ('"shop", schema "public" at "unix:/var/run/postgresql"', {"host": "/var/run/postgresql/"}, [], None),
        ('"sh%6Fp", schema "public" at "127.0.0.1:5432"', {}, [], None),  # Prisma prints the path undecoded
        # multiSchema: the snapshot covers one schema
        ('"shop", schemas "audit, public" at "127.0.0.1:5432"', {}, ["schema"], None),
        ('"shop", schemas "public" at "127.0.0.1:5432"', {}, [], None),
        # several at once
        ('"other", schema "x" at "10.0.0.9:6543"', {}, ["database", "schema", "host", "port"], None),
    ],
)
def test_compare_with_the_url(rest, url, differences, compared):
    check = datasource_check(line(rest), {**URL, **url})
    assert check["differences"] == differences
    assert check["ok"] is (not differences)
    if compared:
        assert check["compared"] == compared
        assert check["not_compared"] == []
    assert "\n" not in check["msg"]
    if differences:
        assert f"differs: {', '.join(differences)}" in check["msg"]
        assert "directUrl" in check["msg"]


def test_the_message_names_both_sides():
    check = datasource_check(line('"other", schema "public" at "10.0.0.9:5432"'), URL)
    assert check["msg"].startswith(
        'prisma migrate status reads database "other", schema "public" at 10.0.0.9:5432, but the URL the snapshot,'
        ' the run lock and the identity pins use names database "shop", schema "public" at 127.0.0.1:5432'
        " (differs: database, host): make Prisma use the URL the playbook is given"
    )
    assert check["prisma"] == {"provider": "PostgreSQL", "database": "other", "schema": "public", "schemas": None,
                               "host": "10.0.0.9", "port": 5432, "adapter": None}  # fmt: skip
    assert check["url"] == URL


def test_ipv6_hosts_are_shown_in_brackets():
    check = datasource_check(line('"shop", schema "public" at "[2001:db8::5]:5432"'), URL)
    assert "at [2001:db8::5]:5432, but" in check["msg"]


def test_a_driver_adapter_compares_what_prisma_printed_and_says_so():
    check = datasource_check(parse_datasource(real("prisma6-status-unusual-pending")), {**URL, "database": "app"})
    assert check["ok"] is True
    assert check["compared"] == ["database", "schema"]
    assert check["not_compared"] == ["host", "port"]
    assert 'driver adapter "@prisma/adapter-pg"' in check["note"]
    assert "not the adapter's connection" in check["note"]
    assert "not compared: host, port" in check["msg"]
    # the database still counts: directUrl naming another database stops the run
    check = datasource_check(parse_datasource(real("prisma6-status-direct-url")), {**URL, "database": "app"})
    assert check["ok"] is False
    assert check["differences"] == ["database"]
    assert 'reads database "other", schema "public", but' in check["msg"]  # no location: Prisma printed none


def test_a_socket_url_is_not_compared_on_host_and_port():
    url = parse_database_url("postgresql://app:pw@localhost/shop?host=/var/run/postgresql")
    check = datasource_check(parse_datasource(real("prisma6-status-classic-socket")), url)
    assert check["ok"] is True
    assert check["not_compared"] == ["host", "port"]
    assert "socket directory" in check["note"]


@pytest.mark.parametrize(
    ("datasource", "status_msg", "text"),
    [
        (None, None, "printed no Datasource line, so the database it migrates cannot be compared"),
        (None, "prisma migrate status failed: exited 1", "(prisma migrate status failed: exited 1)"),
    ],
)
def test_no_datasource_line_fails_closed(datasource, status_msg, text):
    check = datasource_check(datasource, URL, status_msg)
    assert check["ok"] is False
    assert check["compared"] == []
    assert text in check["msg"]
    assert 'database "shop", schema "public" at 127.0.0.1:5432' in check["msg"]


def test_a_line_without_database_fails_closed():
    check = datasource_check(parse_datasource(real("prisma6-status-classic-no-host")), URL)
    assert check["ok"] is False
    assert check["differences"] == ["database", "schema"]
    assert "reads no database, no schema" in check["msg"]


def test_another_provider_fails_closed():
    check = datasource_check(parse_datasource('Datasource "db": MySQL database "shop" at "127.0.0.1:5432"\n'), URL)
    assert check["ok"] is False
    assert "provider" in check["differences"]
    assert "a MySQL datasource" in check["msg"]


def test_conflicting_datasource_lines_fail_closed():
    text = (
        'Datasource "db": PostgreSQL database "shop", schema "public" at "127.0.0.1:5432"\n\n'
        "Following migrations have not yet been applied:\n20240101_a\n"
        'Datasource "db": PostgreSQL database "evil", schema "public" at "127.0.0.1:5432"\n'
    )
    check = datasource_check(parse_datasource(text), URL)
    assert check["ok"] is False
    assert "2 different Datasource lines" in check["msg"]


@pytest.mark.parametrize("password", ["s3cr:et/p@ss?word#1", "p%w+rd é", "Zq9#xW"])
def test_the_message_never_holds_the_password(password):
    from urllib.parse import quote

    url = parse_database_url(f"postgresql://app:{quote(password, safe='')}@127.0.0.1:5432/shop?schema=public")
    for rest in ('"other", schema "public" at "127.0.0.1:5432"', '"shop", schema "public" at "127.0.0.1:5432"'):
        check = datasource_check(line(rest), url)
        text = json.dumps(check, ensure_ascii=False)
        assert password not in text
        assert quote(password, safe="") not in text
    assert set(check["url"]) == {"database", "schema", "host", "port"}
