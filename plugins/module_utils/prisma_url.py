"""Prisma-style PostgreSQL URLs: parse, turn into libpq settings, redact.

Pure standard-library Python, shared by the modules and the tests. A Prisma
URL carries query parameters that only Prisma understands (``schema``,
``connection_limit``, ``pgbouncer`` …); libpq tools such as ``psql`` and
``pg_dump`` refuse them (``invalid URI query parameter: "schema"``). This
module keeps what libpq knows, drops the rest, and hands the password over as
``PGPASSWORD`` in an environment, never on a command line.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, unquote, urlsplit

REDACTED = "********"

# Query parameters libpq understands, mapped to their environment variables.
LIBPQ_PARAMS = {
    "sslmode": "PGSSLMODE",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcrl": "PGSSLCRL",
    "sslpassword": None,  # no environment variable in libpq; not forwarded
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "host": "PGHOST",
    "port": "PGPORT",
}
# Parameters only Prisma reads; dropped for libpq tools.
PRISMA_ONLY_PARAMS = frozenset(
    {
        "schema",
        "connection_limit",
        "pool_timeout",
        "pgbouncer",
        "statement_cache_size",
        "socket_timeout",
        "sslaccept",
        "sslidentity",
        "single_use_connections",
        "max_idle_connection_lifetime",
        "max_connection_lifetime",
    }
)


# The form every message shows (a placeholder, never a real credential).
URL_FORM = "postgresql://USER:PW@HOST:PORT/DB"


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the message says what is wrong, never the URL."""


def parse_database_url(url: str | None) -> dict:
    """Split a Prisma PostgreSQL URL into its parts.

    Returns ``host``, ``port``, ``user``, ``password``, ``database``,
    ``schema`` (default ``public``), ``libpq_env`` (environment for psql /
    pg_dump, password included), ``dropped`` (Prisma-only or unknown
    parameters that were left out) and ``display`` (the URL with the password
    replaced, safe to print).
    """
    if not url or not isinstance(url, str):
        raise DatabaseUrlError("the database URL is empty: set DATABASE_URL (or database_url) to a postgresql:// URL")
    if any(ch.isspace() for ch in url.strip()) or url != url.strip():
        raise DatabaseUrlError("the database URL contains white space: check for a stray newline in the secret")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise DatabaseUrlError(f"the database URL cannot be parsed ({exc}): expected {URL_FORM}") from None
    if parts.scheme not in ("postgresql", "postgres"):
        shown = parts.scheme or "none"
        raise DatabaseUrlError(
            f"the database URL scheme is '{shown}', expected postgresql:// (this project migrates PostgreSQL)"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = unquote(parts.hostname or "") or query.get("host", "")
    database = unquote(parts.path.lstrip("/"))
    if not host:
        raise DatabaseUrlError(f"the database URL has no host: expected {URL_FORM}")
    if not database:
        raise DatabaseUrlError(f"the database URL names no database: expected {URL_FORM}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None

    env = {"PGHOST": host, "PGDATABASE": database}
    if port:
        env["PGPORT"] = str(port)
    if user:
        env["PGUSER"] = user
    if password:
        env["PGPASSWORD"] = password
    dropped = []
    for key, value in query.items():
        var = LIBPQ_PARAMS.get(key)
        if var is None:
            dropped.append(key)
        else:
            env[var] = value
    return {
        "host": env["PGHOST"],
        "port": int(env.get("PGPORT", 5432)),
        "user": user,
        "password": password,
        "database": database,
        "schema": query.get("schema") or "public",
        "libpq_env": env,
        "dropped": sorted(dropped),
        "display": redact_url(url),
    }


_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^@\s]+)(?P<at>@)", re.I)


_SECRET_PARAMS = re.compile(r"(?P<key>[?&](?:sslpassword|password|sslidentity)=)(?P<value>[^&#\s]*)", re.I)


def redact_url(url: str) -> str:
    """The URL with its password (and secret query parameters) replaced by ********."""
    url = _URL_CREDENTIALS.sub(lambda m: m.group("head") + REDACTED + m.group("at"), url)
    return _SECRET_PARAMS.sub(lambda m: m.group("key") + REDACTED, url)


def redact(text: str | None, *secrets: str | None) -> str:
    """Remove every given secret (plain and URL-encoded) and any password
    embedded in a URL from ``text``."""
    if not text:
        return text or ""
    out = text
    for secret in secrets:
        if not secret:
            continue
        candidates = {secret}
        if "://" in secret:
            try:
                password = urlsplit(secret).password
            except ValueError:
                password = None
            # A URL: hide its password (plain and encoded), keep the rest.
            candidates = {password, unquote(password)} if password else set()
        for value in sorted(candidates, key=len, reverse=True):
            # A secret of 1-3 characters would blank every matching letter of the message;
            # inside a URL it is still masked by the pattern below.
            if len(value) >= 4:
                out = out.replace(value, REDACTED)
    out = _URL_CREDENTIALS.sub(lambda m: m.group("head") + REDACTED + m.group("at"), out)
    return _SECRET_PARAMS.sub(lambda m: m.group("key") + REDACTED, out)
