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


# --- Issue 16, class E: libpq tools check the server as Prisma was told to, never less. ---
# Prisma's rules (prisma-engines, quaint connector/postgres/url.rs and native/mod.rs): sslmode
# disable|prefer|require (anything else counts as prefer, the default); sslaccept absent or
# accept_invalid_certs = no certificate check, strict (or any other value) = chain and host name;
# sslcert = the server's CA (PEM), read whatever sslaccept says; sslcert and sslidentity relative
# to the schema's folder (psl set_config_dir).

import os  # noqa: E402
import shutil  # noqa: E402
import stat  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import prisma_url  # noqa: E402
from prisma_url import client_identity, remove_client_identity  # noqa: E402

PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"
TLS_VARS = ("PGSSLMODE", "PGSSLROOTCERT", "PGSSLCERT", "PGSSLKEY", "PGSSLCRL", "PGSSLCRLDIR", "PGSSLMINPROTOCOLVERSION")


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """An app checkout: prisma/ (the schema's folder) with ca.pem, certs/ beside it, and a system CA bundle."""
    schema_dir = tmp_path / "app" / "prisma"
    schema_dir.mkdir(parents=True)
    (schema_dir / "ca.pem").write_text(PEM)
    (tmp_path / "app" / "certs").mkdir()
    (tmp_path / "app" / "certs" / "server-ca.pem").write_text(PEM)
    bundle = tmp_path / "system-bundle.pem"
    bundle.write_text(PEM)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))  # what OpenSSL (and Prisma's strict check) trusts
    return {"schema_dir": str(schema_dir), "root": tmp_path, "bundle": str(bundle)}


def tls_env(query: str, schema_dir: str | None) -> dict:
    conn = parse_database_url(f"postgresql://app:pw@db.internal:5432/shop?schema=s1&{query}".rstrip("&?"), schema_dir)
    return {k: v for k, v in conn["libpq_env"].items() if k in TLS_VARS}


CA = "{schema_dir}/ca.pem"
# (Prisma URL query, libpq environment, what the tools check)
MAPPING = [
    pytest.param("", {}, "none", id="nothing: prefer for both, nothing checked"),
    pytest.param("sslmode=disable", {"PGSSLMODE": "disable"}, "none", id="disable"),
    pytest.param(
        "sslmode=disable&sslaccept=strict&sslcert=ca.pem",
        {"PGSSLMODE": "disable"},
        "none",
        id="disable wins over strict",
    ),
    pytest.param("sslmode=prefer", {"PGSSLMODE": "prefer"}, "none", id="prefer"),
    pytest.param("sslmode=require", {"PGSSLMODE": "require"}, "none", id="require"),
    pytest.param(
        "sslmode=require&sslcert=ca.pem", {"PGSSLMODE": "require"}, "none", id="require + sslcert, default accept"
    ),
    pytest.param(
        "sslmode=require&sslaccept=accept_invalid_certs&sslcert=ca.pem",
        {"PGSSLMODE": "require"},
        "none",
        id="require + accept_invalid_certs",
    ),
    pytest.param(
        "sslmode=require&sslaccept=strict&sslcert=ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA},
        "full",
        id="require + strict + sslcert",
    ),
    pytest.param(
        "sslaccept=strict&sslcert=ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA},
        "full",
        id="strict with Prisma's default prefer",
    ),
    pytest.param(
        "sslmode=prefer&sslaccept=strict&sslcert=ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA},
        "full",
        id="prefer + strict",
    ),
    pytest.param(
        "sslmode=require&sslaccept=yes-please&sslcert=ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA},
        "full",
        id="an unknown sslaccept is strict for Prisma",
    ),
    pytest.param(
        "sslmode=require&sslaccept=strict",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "{bundle}"},
        "full",
        id="strict without sslcert: the system's CAs",
    ),
    pytest.param(
        "sslmode=verify-ca&sslaccept=strict&sslcert=ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA},
        "full",
        id="verify-ca + strict: the host name too",
    ),
    pytest.param(
        "sslmode=require&sslaccept=strict&sslcert=../certs/server-ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "{root}/app/certs/server-ca.pem"},
        "full",
        id="relative sslcert outside the schema folder",
    ),
    pytest.param(
        "sslmode=require&sslaccept=strict&sslcert={root}/app/certs/server-ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "{root}/app/certs/server-ca.pem"},
        "full",
        id="absolute sslcert",
    ),
    pytest.param(
        "sslmode=verify-full&sslrootcert={root}/app/certs/server-ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "{root}/app/certs/server-ca.pem"},
        "full",
        id="libpq verify-full + sslrootcert as given",
    ),
    pytest.param(
        "sslmode=verify-full&sslcert=ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": CA},
        "full",
        id="libpq verify-full checks against Prisma's sslcert",
    ),
    pytest.param(
        "sslmode=verify-ca&sslcert=ca.pem",
        {"PGSSLMODE": "verify-ca", "PGSSLROOTCERT": CA},
        "ca",
        id="libpq verify-ca",
    ),
    pytest.param(
        "sslmode=verify-full", {"PGSSLMODE": "verify-full"}, "libpq", id="libpq verify-full, libpq's root.crt"
    ),
    pytest.param(
        "sslmode=require&sslrootcert={root}/app/certs/server-ca.pem",
        {"PGSSLMODE": "require", "PGSSLROOTCERT": "{root}/app/certs/server-ca.pem"},
        "libpq",
        id="libpq require + sslrootcert (libpq then checks the chain)",
    ),
    pytest.param(
        "sslaccept=strict&sslcert=ca.pem&sslrootcert={root}/app/certs/server-ca.pem",
        {"PGSSLMODE": "verify-full", "PGSSLROOTCERT": "{root}/app/certs/server-ca.pem"},
        "full",
        id="a libpq sslrootcert wins over sslcert",
    ),
    pytest.param(
        "sslmode=require&sslcrl=/etc/ssl/crl.pem&ssl_min_protocol_version=TLSv1.3",
        {"PGSSLMODE": "require", "PGSSLCRL": "/etc/ssl/crl.pem", "PGSSLMINPROTOCOLVERSION": "TLSv1.3"},
        "none",
        id="libpq crl and protocol floor kept",
    ),
    pytest.param("sslmode=allow", {"PGSSLMODE": "allow"}, "none", id="libpq allow"),
]


@pytest.mark.parametrize(("query", "expected", "verify"), MAPPING)
def test_prisma_tls_parameters_map_to_libpq(layout, query, expected, verify):
    query = query.format(**layout)
    conn = parse_database_url(
        f"postgresql://app:pw@db.internal:5432/shop?schema=s1&{query}".rstrip("&"), layout["schema_dir"]
    )
    env = {k: v for k, v in conn["libpq_env"].items() if k in TLS_VARS}
    assert env == {k: v.format(**layout) for k, v in expected.items()}
    assert "PGSSLCERT" not in env  # Prisma's sslcert is never handed to libpq as a client certificate
    assert conn["tls"]["verify"] == verify
    for key in ("sslaccept", "sslcert", "sslidentity", "sslpassword"):
        assert key not in conn["dropped"]


def test_strict_is_never_weaker_than_what_libpq_was_asked_for(layout):
    """Every combination: whenever Prisma checks the certificate, so does libpq (chain and host name)."""
    modes = [None, *prisma_url.SSLMODES]
    for mode in modes:
        for accept in (None, "strict", "accept_invalid_certs"):
            query = "&".join(f"{k}={v}" for k, v in (("sslmode", mode), ("sslaccept", accept)) if v)
            env = tls_env(f"{query}&sslcert=ca.pem", layout["schema_dir"])
            prisma_checks = accept == "strict" and mode != "disable"
            if prisma_checks:
                assert env["PGSSLMODE"] == "verify-full", (mode, accept)
                assert env["PGSSLROOTCERT"].endswith("/prisma/ca.pem")
            if mode in ("verify-ca", "verify-full") and not prisma_checks:
                assert env["PGSSLMODE"] == mode  # a libpq mode given as such is kept
            if mode == "disable":
                assert env == {"PGSSLMODE": "disable"}


def test_relative_sslcert_is_read_against_the_schema_folder_not_the_working_directory(layout, monkeypatch):
    monkeypatch.chdir(layout["root"])  # a ca.pem here must not be the one used
    Path(layout["root"], "ca.pem").write_text(PEM)
    env = tls_env("sslaccept=strict&sslcert=ca.pem", layout["schema_dir"])
    assert env["PGSSLROOTCERT"] == os.path.join(layout["schema_dir"], "ca.pem")
    assert os.path.isabs(env["PGSSLROOTCERT"])


def test_an_absolute_sslcert_needs_no_schema_folder(layout):
    ca = os.path.join(layout["schema_dir"], "ca.pem")
    assert tls_env(f"sslaccept=strict&sslcert={ca}", None)["PGSSLROOTCERT"] == ca


def refusal(query: str, schema_dir: str | None, password: str = "pw", sslpassword: str | None = None) -> str:  # noqa: S107
    url = f"postgresql://app:{quote(password, safe='')}@db.internal:5432/shop?schema=s1&{query}"
    if sslpassword:
        url += f"&sslpassword={quote(sslpassword, safe='')}"
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url(url, schema_dir)
    message = str(err.value)
    assert "\n" not in message
    return message


REFUSALS = [
    pytest.param(
        "sslaccept=strict&sslcert=Zk8qQw-ca.pem", None, ["sslcert", "schema_dir", "absolute"], id="relative, no folder"
    ),
    pytest.param(
        "sslaccept=strict&sslidentity=Zk8qQw-id.p12",
        None,
        ["sslidentity", "schema_dir", "absolute"],
        id="identity, no folder",
    ),
    pytest.param(
        "sslaccept=strict&sslcert=Zk8qQw-missing.pem", "SD", ["sslcert", "cannot be read", "schema_dir"], id="missing"
    ),
    pytest.param("sslcert=Zk8qQw-missing.pem", "SD", ["sslcert", "cannot be read"], id="missing, not even strict"),
    pytest.param(
        "sslaccept=strict&sslcert=/nonexistent/Zk8qQw.pem", "SD", ["sslcert", "cannot be read"], id="absolute missing"
    ),
    pytest.param("sslaccept=strict&sslcert=.", "SD", ["sslcert", "cannot be read"], id="a folder"),
    pytest.param("sslaccept=strict&sslcert=Zk8qQw-garbage.pem", "SD", ["sslcert", "PEM"], id="not PEM"),
    pytest.param("sslmode=require&sslkey=/etc/Zk8qQw.key", "SD", ["sslkey", "sslidentity"], id="libpq client key"),
    pytest.param("sslmode=Zk8qQw-full", "SD", ["sslmode", "verify-full"], id="unknown sslmode"),
    pytest.param(
        "sslmode=verify-full&sslrootcert=Zk8qQw-ca.pem", "SD", ["sslrootcert", "absolute"], id="relative sslrootcert"
    ),
]


@pytest.mark.parametrize(("query", "folder", "words"), REFUSALS)
@pytest.mark.parametrize("special", ["@", "/", "%", " "])
def test_tls_refusals_are_one_line_name_the_parameter_and_quote_nothing_of_the_url(
    layout, query, folder, words, special, request
):
    Path(layout["schema_dir"], "Zk8qQw-garbage.pem").write_text("not a certificate")
    password = random_password(request.node.name + "p", special)
    sslpassword = random_password(request.node.name + "s", special)
    message = refusal(query, layout["schema_dir"] if folder == "SD" else None, password, sslpassword)
    for word in words:
        assert word in message, message
    assert "Zk8qQw" not in message  # no piece of the URL: not even the file name
    assert "db.internal" not in message
    assert not leaks(message, password), message
    assert not leaks(message, sslpassword), message


def test_strict_without_sslcert_and_without_a_system_bundle_is_refused(layout, monkeypatch):
    monkeypatch.setattr(prisma_url, "system_ca_bundle", lambda: None)
    message = refusal("sslmode=require&sslaccept=strict", layout["schema_dir"])
    assert "sslcert" in message
    assert "CA bundle" in message


def test_display_and_redaction_work_whatever_the_tls_files(layout):
    """The TLS checks are for the tools: showing or redacting a URL never fails on them."""
    url = (
        "postgresql://app:Pw4Secret@db/shop?sslaccept=strict&sslcert=missing.pem&sslidentity=id.p12&sslpassword=SslPw9"
    )
    assert redact_url(url) == (
        "postgresql://app:********@db/shop?sslaccept=strict&sslcert=missing.pem&sslidentity=********&sslpassword=********"
    )
    assert "SslPw9" in prisma_url.url_secrets(url)
    assert "SslPw9" not in redact(f"failed with {url} and SslPw9", url)


def test_system_ca_bundle_follows_openssl(tmp_path, monkeypatch):
    bundle = tmp_path / "b.pem"
    bundle.write_text(PEM)
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    assert prisma_url.system_ca_bundle() == str(bundle)
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "none.pem"))
    assert prisma_url.system_ca_bundle() != str(tmp_path / "none.pem")


# --- sslidentity: a PKCS#12 client identity, converted for libpq with openssl ---

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(not OPENSSL, reason="openssl is not installed")


def make_identity(folder: Path, password: str, name: str = "id.p12") -> Path:
    """A client key, its self-signed certificate and a PKCS#12 file of both, the password on stdin."""
    key, cert, p12 = folder / "client.key", folder / "client.crt", folder / name
    subprocess.run(
        [OPENSSL, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
         "-subj", "/CN=app"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        [OPENSSL, "pkcs12", "-export", "-inkey", key, "-in", cert, "-out", p12, "-passout", "stdin"],
        input=(password + "\n").encode(),
        check=True,
        capture_output=True,
    )
    return p12


def public_key(*argv) -> bytes:
    return subprocess.run([OPENSSL, *argv], check=True, capture_output=True).stdout


@needs_openssl
@pytest.mark.parametrize("special", SPECIALS)
def test_sslidentity_becomes_a_private_client_certificate_and_key(layout, special, request, monkeypatch):
    sslpassword = random_password(request.node.name, special)
    make_identity(Path(layout["schema_dir"]), sslpassword)
    url = f"postgresql://app:pw@db/shop?sslmode=require&sslidentity=id.p12&sslpassword={quote(sslpassword, safe='')}"
    conn = parse_database_url(url, layout["schema_dir"])
    assert conn["tls"]["identity"] == os.path.join(layout["schema_dir"], "id.p12")
    calls = []
    real_run = subprocess.run

    def spy(argv, **kwargs):
        calls.append((argv, kwargs.get("env")))
        return real_run(argv, **kwargs)

    monkeypatch.setattr(prisma_url.subprocess, "run", spy)
    client_identity(conn)
    assert calls
    for argv, env in calls:  # the password goes to openssl on stdin only
        assert env is None
        assert not any(leaks(str(arg), sslpassword) for arg in argv), argv
    cert, key = conn["libpq_env"]["PGSSLCERT"], conn["libpq_env"]["PGSSLKEY"]
    folder = os.path.dirname(key)
    assert os.path.dirname(cert) == folder == conn["tls"]["identity_dir"]
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(cert).st_mode) == 0o600
    assert public_key("x509", "-in", cert, "-noout", "-pubkey") == public_key("pkey", "-in", key, "-pubout")
    for path in (cert, key):
        assert not leaks(Path(path).read_text(), sslpassword)
    assert sslpassword not in conn["libpq_env"].values()
    client_identity(conn)  # once only
    assert conn["libpq_env"]["PGSSLKEY"] == key
    remove_client_identity(conn)
    assert not os.path.exists(folder)
    assert "PGSSLKEY" not in conn["libpq_env"]


@needs_openssl
def test_a_wrong_sslpassword_is_one_line_without_it(layout, request):
    right = random_password(request.node.name + "r", "#")
    wrong = random_password(request.node.name + "w", "@")
    make_identity(Path(layout["schema_dir"]), right)
    conn = parse_database_url(
        f"postgresql://app:pw@db/shop?sslidentity=id.p12&sslpassword={quote(wrong, safe='')}", layout["schema_dir"]
    )
    before = set(os.listdir(tempfile_dir()))
    with pytest.raises(DatabaseUrlError) as err:
        client_identity(conn)
    message = str(err.value)
    assert "sslidentity" in message
    assert "sslpassword" in message
    assert "\n" not in message
    assert not leaks(message, wrong)
    assert not leaks(message, right)
    assert "PGSSLKEY" not in conn["libpq_env"]
    assert {n for n in set(os.listdir(tempfile_dir())) - before if n.startswith("prisma-tls-")} == set()


def tempfile_dir() -> str:
    import tempfile

    return tempfile.gettempdir()


@needs_openssl
def test_the_converted_identity_is_removed_when_the_process_exits(layout, tmp_path):
    make_identity(Path(layout["schema_dir"]), "Pw-exit")
    script = (
        "import sys; sys.path.insert(0, sys.argv[1]); import prisma_url;"
        " c = prisma_url.parse_database_url(sys.argv[2], sys.argv[3]); prisma_url.client_identity(c);"
        " print(c['tls']['identity_dir'])"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(Path(prisma_url.__file__).parent),
         "postgresql://app:pw@db/shop?sslidentity=id.p12&sslpassword=Pw-exit", layout["schema_dir"]],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    folder = proc.stdout.strip()
    assert folder.startswith(tempfile_dir())
    assert not os.path.exists(folder)


def test_without_openssl_sslidentity_is_refused_in_one_line(layout, monkeypatch):
    Path(layout["schema_dir"], "id.p12").write_bytes(b"\x30\x82")
    conn = parse_database_url("postgresql://app:pw@db/shop?sslidentity=id.p12&sslpassword=Xy9", layout["schema_dir"])
    monkeypatch.setattr(prisma_url.shutil, "which", lambda name: None)
    with pytest.raises(DatabaseUrlError) as err:
        client_identity(conn)
    assert "install openssl" in str(err.value)
    assert "Xy9" not in str(err.value)


# --- Where the schema's folder comes from, and how modules get it ---


def test_schema_dir_defaults_to_the_prisma_folder_of_project_dir(tmp_path):
    from prisma_connection import schema_dir

    project = tmp_path / "app"
    (project / "prisma").mkdir(parents=True)
    assert schema_dir({"schema_dir": "/etc/app-schema", "project_dir": str(project)}) == "/etc/app-schema"
    assert schema_dir({"project_dir": str(project)}) == str(project / "prisma")
    assert schema_dir({}) is None
    assert schema_dir({"project_dir": None, "schema_dir": None}) is None
    # a schema file given to the module (prisma_command's schema): its folder
    assert schema_dir({"project_dir": str(project)}, "db/custom.prisma") == str(project / "db")
    # a multi-file schema: prisma/schema/ (no prisma/schema.prisma)
    (project / "prisma" / "schema").mkdir()
    assert schema_dir({"project_dir": str(project)}) == str(project / "prisma" / "schema")
    assert schema_dir({"project_dir": str(project)}, "prisma/schema") == str(project / "prisma" / "schema")
    (project / "prisma" / "schema.prisma").write_text("")
    assert schema_dir({"project_dir": str(project)}) == str(project / "prisma")


def test_connect_reads_a_relative_sslcert_against_project_dir_and_fails_in_one_line(tmp_path):
    from prisma_connection import connect, connection_argument_spec

    assert connection_argument_spec()["schema_dir"] == {"type": "path"}
    project = tmp_path / "app"
    (project / "prisma").mkdir(parents=True)
    (project / "prisma" / "ca.pem").write_text(PEM)
    url = "postgresql://app:Pw4Secret@localhost/shop?sslmode=require&sslaccept=strict&sslcert=ca.pem"
    failures = []

    def fail(msg):
        failures.append(msg)
        raise SystemExit(1)

    conn = connect({"database_url": url, "project_dir": str(project)}, fail)
    assert conn["libpq_env"]["PGSSLROOTCERT"] == str(project / "prisma" / "ca.pem")
    with pytest.raises(SystemExit):
        connect({"database_url": url}, fail)
    assert failures[-1].startswith("database_url: sslcert is a relative path")
    assert "schema_dir" in failures[-1]
    with pytest.raises(SystemExit):
        connect({"database_url": url, "schema_dir": str(tmp_path)}, fail)
    assert f"relative to schema_dir {tmp_path})" in failures[-1]
    assert all("Pw4Secret" not in m and "ca.pem" not in m for m in failures)


def test_a_certificate_the_tools_reject_gets_one_line_about_the_ca():
    from prisma_pg import explain_psql_error

    conn = parse_database_url("postgresql://app:pw@localhost:5433/shop")
    at = 'connection to server at "localhost" (127.0.0.1), port 5433 failed'
    for stderr in (
        f"psql: error: {at}: SSL error: certificate verify failed\n",
        f'pg_dump: error: {at}: server certificate for "localhost" does not match host name "127.0.0.1"\n',
    ):
        message = explain_psql_error(stderr, conn)
        assert message.startswith("the TLS certificate of localhost:5433 was not accepted: check that sslcert")
