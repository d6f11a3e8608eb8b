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
from urllib.parse import parse_qsl, quote, unquote, urlsplit

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
# What to do when the URL cannot be split: no message ever quotes URL-derived text,
# which may hold a piece of the password.
ENCODE_HINT = "percent-encode special characters in the password (/ ? # @ : % + space)"
# Query parameters that carry a secret: masked in every display.
SECRET_PARAMS = frozenset({"password", "sslpassword", "sslidentity"})
# prisma_env names whose values are secrets (DIRECT_URL, SHADOW_DATABASE_URL, API_TOKEN ...).
_SECRET_NAME = re.compile(r"(URL$|PASSWORD|SECRET|TOKEN)", re.I)


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the message says what is wrong, never the URL."""


def _unparseable() -> DatabaseUrlError:
    return DatabaseUrlError(f"the database URL cannot be parsed: {ENCODE_HINT}; expected {URL_FORM}")


def _port(value: str | None) -> int | None:
    """A port number, or DatabaseUrlError without the value (it may be a piece of the password)."""
    if value is None or value == "":
        return None
    if not value.isdigit() or not 0 < int(value) < 65536:
        raise DatabaseUrlError(
            "the database URL cannot be parsed: its port is not a number from 1 to 65535"
            f" (a port in the URL or ?port=; if the password holds special characters, {ENCODE_HINT})"
        )
    return int(value)


def parse_database_url(url: str | None) -> dict:
    """Split a Prisma PostgreSQL URL into its parts.

    Returns ``host``, ``port``, ``user``, ``password``, ``database``,
    ``schema`` (default ``public``), ``libpq_env`` (environment for psql /
    pg_dump, password included), ``dropped`` (Prisma-only or unknown
    parameters that were left out), ``secrets`` (every secret value the URL
    holds, for redact), ``pgbouncer`` (the URL says ``pgbouncer=true``) and ``display`` (built from the parsed parts, the
    password and secret parameters replaced, safe to print).
    No error message quotes any part of the URL.
    """
    if not url or not isinstance(url, str):
        raise DatabaseUrlError("the database URL is empty: set DATABASE_URL (or database_url) to a postgresql:// URL")
    if any(ch.isspace() for ch in url.strip()) or url != url.strip():
        raise DatabaseUrlError(
            "the database URL contains white space: percent-encode a space in the password as %20,"
            " or check for a stray newline in the secret"
        )
    try:
        parts = urlsplit(url)
        hostname = parts.hostname
        username, password_raw = parts.username, parts.password
        raw_port = parts.netloc.rpartition("@")[2]
        raw_port = raw_port.rpartition("]")[2] if raw_port.startswith("[") else raw_port
        raw_port = raw_port.partition(":")[2] if ":" in raw_port else None
    except ValueError:
        raise _unparseable() from None
    if parts.scheme not in ("postgresql", "postgres"):
        shown = parts.scheme if re.fullmatch(r"[a-z][a-z0-9+.-]{0,20}", parts.scheme or "") else "none"
        raise DatabaseUrlError(
            f"the database URL scheme is '{shown}', expected postgresql:// (this project migrates PostgreSQL)"
        )
    # An '@' after the host part means the password held an unencoded / ? or #: the
    # split is wrong, and host, port or database would be pieces of the password.
    if "@" in url[len(parts.scheme) + 3 + len(parts.netloc) :] or parts.fragment:
        raise _unparseable()
    port = _port(raw_port)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    host = unquote(hostname or "") or query.get("host", "")
    database = unquote(parts.path.lstrip("/"))
    if not host:
        raise DatabaseUrlError(f"the database URL has no host: expected {URL_FORM}")
    if not database:
        raise DatabaseUrlError(f"the database URL names no database: expected {URL_FORM}")
    if "port" in query:
        port = _port(query["port"])
    user = unquote(username) if username else None
    password = unquote(password_raw) if password_raw is not None else None
    if query.get("password"):  # libpq reads ?password= too, and it wins over the user part
        password = query["password"]

    env = {"PGHOST": host, "PGDATABASE": database}
    if port:
        env["PGPORT"] = str(port)
    if user:
        env["PGUSER"] = user
    if password:
        env["PGPASSWORD"] = password
    dropped = []
    for key, value in query.items():
        if key in ("password", "port"):
            continue
        var = LIBPQ_PARAMS.get(key)
        if var is None:
            dropped.append(key)
        else:
            env[var] = value
    secrets = sorted({v for v in (password, password_raw, query.get("sslpassword"), query.get("sslidentity")) if v})
    return {
        "host": env["PGHOST"],
        "port": int(env.get("PGPORT", 5432)),
        "user": user,
        "password": password,
        "sslpassword": query.get("sslpassword") or None,
        # Prisma's pgbouncer=true: the URL names a transaction-mode pooler (no session advisory locks)
        "pgbouncer": query.get("pgbouncer", "").lower() in ("true", "1", "yes"),
        "database": database,
        "schema": query.get("schema") or "public",
        "libpq_env": env,
        "dropped": sorted(dropped),
        "secrets": secrets,
        "display": _display(
            parts.scheme,
            user,
            password_raw is not None or bool(password),
            hostname,
            port,
            database,
            parse_qsl(parts.query, keep_blank_values=True),
        ),
    }


def _display(scheme, user, has_password, hostname, port, database, pairs) -> str:
    """The URL rebuilt from its parsed parts, every secret replaced (never a substring of the input)."""
    userinfo = ""
    if user:
        userinfo = quote(user, safe="") + (":" + REDACTED if has_password else "") + "@"
    elif has_password:
        userinfo = ":" + REDACTED + "@"
    host = hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = userinfo + host + (f":{port}" if port else "")
    query = "&".join(
        f"{quote(k, safe='')}={REDACTED if k.lower() in SECRET_PARAMS else quote(v, safe='/:,')}" for k, v in pairs
    )
    return f"{scheme}://{netloc}/{quote(database, safe='')}" + (f"?{query}" if query else "")


_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^\s/]+)(?P<at>@)", re.I)


_SECRET_PARAMS = re.compile(r"(?P<key>[?&](?:sslpassword|password|sslidentity)=)(?P<value>[^&#\s]*)", re.I)


def redact_url(url: str) -> str:
    """The URL with its password (and secret query parameters) replaced by ********: the parsed
    display when it parses, else the patterns below (an unparseable URL is never shown by this
    project's messages)."""
    try:
        return parse_database_url(url)["display"]
    except DatabaseUrlError:
        pass
    url = _URL_CREDENTIALS.sub(lambda m: m.group("head") + REDACTED + m.group("at"), url)
    return _SECRET_PARAMS.sub(lambda m: m.group("key") + REDACTED, url)


def url_secrets(url: str) -> set[str]:
    """Every value of a URL that may be its password, plain and encoded, whether it parses or not:
    the parsed password and secret parameters, and what lies between the user and the last '@'
    (where a password with an unencoded / ? # ends)."""
    found = set()
    try:
        found.update(parse_database_url(url)["secrets"])
    except DatabaseUrlError:
        pass
    rest = url.partition("://")[2]
    if "@" in rest:
        userinfo = rest.rpartition("@")[0]
        if ":" in userinfo:
            found.add(userinfo.partition(":")[2])
        first = rest.partition("@")[0]
        if ":" in first:
            found.add(first.partition(":")[2])
    for match in _SECRET_PARAMS.finditer(url):
        found.add(match.group("value"))
    found |= {unquote(v) for v in found}
    found |= {quote(v, safe="") for v in found}
    return {v for v in found if v}


def env_secrets(environment: dict | None) -> list[str]:
    """The values of an environment (``prisma_env``) that are secrets: every variable whose name ends
    in URL (DIRECT_URL, SHADOW_DATABASE_URL) or holds PASSWORD, SECRET or TOKEN."""
    return [str(v) for k, v in (environment or {}).items() if v and _SECRET_NAME.search(str(k))]


def _replace(out: str, value: str) -> str:
    if len(value) >= 4:
        return out.replace(value, REDACTED)
    # A secret of 1-3 characters would blank every matching letter of the message: it is
    # masked only where it stands alone (not inside a longer word); inside a URL the
    # patterns below mask it whatever its length.
    return re.sub(rf"(?<![A-Za-z0-9]){re.escape(value)}(?![A-Za-z0-9])", REDACTED, out)


def redact(text: str | None, *secrets: str | None) -> str:
    """Remove every given secret (plain and URL-encoded) and any password
    embedded in a URL from ``text``. A secret that is a URL hides its password
    (and secret parameters), whether it parses or not."""
    if not text:
        return text or ""
    out = text
    candidates = set()
    for secret in secrets:
        if not secret:
            continue
        if "://" in secret:
            candidates |= url_secrets(secret)
        else:
            candidates |= {secret, quote(secret, safe="")}
    for value in sorted(candidates, key=len, reverse=True):
        out = _replace(out, value)
    out = _URL_CREDENTIALS.sub(lambda m: m.group("head") + REDACTED + m.group("at"), out)
    return _SECRET_PARAMS.sub(lambda m: m.group("key") + REDACTED, out)
