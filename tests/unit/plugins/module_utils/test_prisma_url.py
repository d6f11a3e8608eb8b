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


# --- Issue 16, class D: the secret never leaves, whatever characters it holds. ---

import random  # noqa: E402
import zlib  # noqa: E402
from urllib.parse import quote  # noqa: E402

from prisma_url import env_secrets  # noqa: E402

SPECIALS = ["@", ":", "/", "?", "#", "%", "+", " "]


def random_password(seed: str, special: str, length: int = 24) -> str:
    """Random letters and digits around one special character (seeded per test, reproducible)."""
    rng = random.Random(zlib.crc32(seed.encode()))  # noqa: S311 (reproducible test data, not a secret)
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"
    body = "".join(rng.choice(alphabet) for _ in range(length))
    cut = rng.randrange(6, length - 6)
    return body[:cut] + special + body[cut:] + special + "Zq"


def leaks(text: str, password: str) -> list[str]:
    """The password, its encoded form, or any 6-character piece of either that ``text`` holds."""
    encoded = quote(password, safe="")
    pieces = {password, encoded}
    for value in (password, encoded):
        pieces |= {value[i : i + 6] for i in range(len(value) - 5)}
    return sorted(p for p in pieces if p in text)


def outputs(conn: dict) -> list[str]:
    """Everything a parsed URL shows: the display and every libpq variable except PGPASSWORD."""
    return [conn["display"], *(v for k, v in conn["libpq_env"].items() if k != "PGPASSWORD")]


@pytest.mark.parametrize("special", SPECIALS)
def test_an_encoded_password_reaches_only_pgpassword(special, request):
    password = random_password(request.node.name, special)
    conn = parse_database_url(f"postgresql://app:{quote(password, safe='')}@db.internal:6543/shop?schema=t1")
    assert conn["password"] == password
    assert conn["libpq_env"]["PGPASSWORD"] == password
    assert conn["display"] == "postgresql://app:********@db.internal:6543/shop?schema=t1"
    for text in outputs(conn):
        assert not leaks(text, password), text


@pytest.mark.parametrize("special", SPECIALS)
def test_an_unencoded_password_fails_without_quoting_it_or_parses_cleanly(special, request):
    password = random_password(request.node.name, special)
    url = f"postgresql://app:{password}@db.internal:5432/shop?schema=t1"
    try:
        conn = parse_database_url(url)
    except DatabaseUrlError as exc:
        message = str(exc)
        assert "\n" not in message
        assert not leaks(message, password), message
        assert "percent-encode" in message
        assert not leaks(redact(message, url), password)
        return
    # It parsed (@ : + and % split where libpq splits): the display comes from the parts.
    assert special in "@:+%"
    assert conn["host"] == "db.internal"
    assert conn["database"] == "shop"
    assert conn["display"] == "postgresql://app:********@db.internal:5432/shop?schema=t1"
    for text in outputs(conn):
        assert not leaks(text, password), text


@pytest.mark.parametrize("special", SPECIALS)
def test_redact_hides_the_password_of_any_url_in_free_text(special, request):
    password = random_password(request.node.name, special)
    encoded = quote(password, safe="")
    for url in (f"postgresql://app:{encoded}@db/shop", f"postgresql://app:{password}@db/shop"):
        text = f"error near {url} using {password} or {encoded}; retry"
        out = redact(text, url)
        assert not leaks(out, password), out
        assert out.endswith("; retry")


@pytest.mark.parametrize("special", SPECIALS)
@pytest.mark.parametrize("param", ["password", "sslpassword"])
def test_a_password_in_the_query_is_masked_and_password_reaches_pgpassword(special, param, request):
    password = random_password(request.node.name, special)
    conn = parse_database_url(f"postgresql://app@db:5432/shop?{param}={quote(password, safe='')}&sslmode=require")
    assert f"{param}=********" in conn["display"]
    for text in outputs(conn):
        assert not leaks(text, password), text
    assert password in conn["secrets"]
    if param == "password":
        assert conn["libpq_env"]["PGPASSWORD"] == password
    else:  # libpq has no environment variable for it: never in the env, never on argv
        assert conn["sslpassword"] == password
        assert password not in conn["libpq_env"].values()


@pytest.mark.parametrize("password", ["x", "Q7", "a:b", "7@"])
def test_short_passwords_are_masked_in_every_display(password):
    conn = parse_database_url(f"postgresql://app:{quote(password, safe='')}@db/shop")
    assert conn["display"] == "postgresql://app:********@db/shop"
    assert redact_url(f"postgresql://app:{quote(password, safe='')}@db/shop") == conn["display"]
    out = redact(f"login with {password} failed for tables and {password}.", f"postgresql://app:{password}@db/shop")
    assert f" {password} " not in out
    assert "tables" in out  # a lone short secret is masked, the letters of other words are not


@pytest.mark.parametrize(
    "url", ["postgresql://u@h/db?port=abc", "postgresql://u@h:abc/db", "postgresql://u@h/db?port=0"]
)
def test_a_bad_port_is_one_line_without_the_value(url):
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url(url)
    assert "port" in str(err.value)
    assert "abc" not in str(err.value)
    assert "\n" not in str(err.value)


def test_a_query_port_reaches_libpq_and_the_result():
    conn = parse_database_url("postgresql://u@h/db?port=6544")
    assert conn["port"] == 6544
    assert conn["libpq_env"]["PGPORT"] == "6544"


def test_prisma_env_secrets_are_the_urls_passwords_secrets_and_tokens(request):
    direct = random_password(request.node.name + "d", "/")
    shadow = random_password(request.node.name + "s", "@")
    token = random_password(request.node.name + "t", "+")
    env = {
        "DIRECT_URL": f"postgresql://app:{quote(direct, safe='')}@db/shop",
        "SHADOW_DATABASE_URL": f"postgresql://app:{shadow}@db/shadow",
        "API_TOKEN": token,
        "PRISMA_HIDE_UPDATE_MESSAGE": "1",
        "NODE_OPTIONS": "--max-old-space-size=512",
    }
    found = env_secrets(env)
    assert sorted(found) == sorted([env["DIRECT_URL"], env["SHADOW_DATABASE_URL"], token])
    text = f"{env['DIRECT_URL']} {direct} {quote(direct, safe='')} {shadow} {token} and --max-old-space-size=512"
    out = redact(text, *found)
    for secret in (direct, shadow, token):
        assert not leaks(out, secret), out
    assert "--max-old-space-size=512" in out


def test_prisma_cli_removes_prisma_env_secrets_from_output_and_the_result(request):
    from prisma_cli import hide_from_result, scrub

    direct = random_password(request.node.name, "#")
    env = {"DIRECT_URL": f"postgresql://app:{quote(direct, safe='')}@db/shop", "NODE_ENV": "production"}
    out = scrub(f"P1001 at {env['DIRECT_URL']} ({direct}) in production", env)
    assert not leaks(out, direct), out
    assert "production" in out

    class Module:
        no_log_values: set = set()

    hide_from_result(Module, [env["DIRECT_URL"], "ab"])
    # Ansible masks them in the result, invocation included
    assert {env["DIRECT_URL"], direct, quote(direct, safe="")} <= Module.no_log_values
    assert "ab" not in Module.no_log_values
