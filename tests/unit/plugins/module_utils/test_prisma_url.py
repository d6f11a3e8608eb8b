from __future__ import annotations

import pytest
from prisma_url import DatabaseUrlError, parse_database_url, redact, redact_url


def test_prisma_only_parameters_are_dropped_and_libpq_ones_kept():
    conn = parse_database_url(
        "postgresql://app:s%40cr%2Fet@db.internal:6543/shop?schema=tenant_1&connection_limit=5"
        "&pool_timeout=10&pgbouncer=true&statement_cache_size=0&socket_timeout=5&sslmode=verify-full"
        "&sslrootcert=/etc/ssl/ca.pem&application_name=migrator"
    )
    assert conn["password"] == "s@cr/et"
    assert conn["schema"] == "tenant_1"
    assert conn["libpq_env"] == {
        "PGHOST": "db.internal",
        "PGPORT": "6543",
        "PGUSER": "app",
        "PGPASSWORD": "s@cr/et",
        "PGDATABASE": "shop",
        "PGSSLMODE": "verify-full",
        "PGSSLROOTCERT": "/etc/ssl/ca.pem",
        "PGAPPNAME": "migrator",
    }
    assert conn["dropped"] == [
        "connection_limit",
        "pgbouncer",
        "pool_timeout",
        "schema",
        "socket_timeout",
        "statement_cache_size",
    ]
    assert "s%40cr%2Fet" not in conn["display"]
    assert "********" in conn["display"]


def test_defaults_and_socket_host():
    conn = parse_database_url("postgres://app@localhost/shop?host=/var/run/postgresql")
    assert conn["schema"] == "public"
    assert conn["port"] == 5432
    assert conn["libpq_env"]["PGHOST"] == "/var/run/postgresql"
    assert "PGPASSWORD" not in conn["libpq_env"]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        (None, "the database URL is empty"),
        ("", "the database URL is empty"),
        ("mysql://u:p@h/db", "scheme is 'mysql'"),
        ("postgresql://u:p@h:70000/db", "cannot be parsed"),
        ("postgresql://u:p@/db", "has no host"),
        ("postgresql://u:p@h:5432", "names no database"),
        ("postgresql://u:p@h/db\n", "white space"),
        ("db.internal:5432/shop", "scheme is"),
    ],
)
def test_bad_urls_get_one_clear_line_without_the_secret(url, message):
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url(url)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
    assert ":p@" not in str(err.value)


def test_redact_removes_plain_encoded_and_embedded_passwords():
    url = "postgresql://app:p%40ss%21@db/x"
    text = f"connecting to {url}; password p@ss! or p%40ss%21; other postgresql://u:hunter2@h/y"
    out = redact(text, url)
    for secret in ("p@ss!", "p%40ss%21", "hunter2"):
        assert secret not in out
    assert "postgresql://app:********@db/x" in out
    assert redact_url("postgresql://u@h/db") == "postgresql://u@h/db"
    assert redact("", url) == ""
