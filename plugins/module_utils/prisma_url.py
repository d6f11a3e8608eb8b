"""Prisma-style PostgreSQL URLs: parse, turn into libpq settings, redact.

Pure standard-library Python, shared by the modules and the tests. A Prisma
URL carries query parameters that only Prisma understands (``schema``,
``connection_limit``, ``pgbouncer`` …); libpq tools such as ``psql`` and
``pg_dump`` refuse them (``invalid URI query parameter: "schema"``). This
module keeps what libpq knows, drops the rest, and hands the password over as
``PGPASSWORD`` in an environment, never on a command line.

TLS parameters mean different things to Prisma and to libpq, and are
translated so that the tools check the server as Prisma does, never less
(``tls_settings``; the table is in docs/tls.md). Prisma's rules are those of
its PostgreSQL connector (prisma-engines, quaint ``connector/postgres/url.rs``
and ``native/mod.rs``; relative paths: psl ``set_config_dir``):

- ``sslmode``: Prisma knows ``disable``, ``prefer`` (its default) and
  ``require``; any other value counts as ``prefer`` there.
- ``sslaccept``: ``accept_invalid_certs`` is the default - the server's
  certificate is not checked at all, even with ``sslcert``; ``strict`` (and
  any value other than ``accept_invalid_certs``) checks the chain and the host
  name: libpq's ``verify-full``.
- ``sslcert`` is the server's CA (PEM), libpq's ``sslrootcert``, not a client
  certificate; a relative path is relative to the folder of the schema file.
  Prisma reads the file whatever ``sslaccept`` says and fails when it cannot.
- ``sslidentity`` is a PKCS#12 client identity (relative like ``sslcert``),
  ``sslpassword`` its password. libpq cannot read PKCS#12: ``client_identity``
  converts it with ``openssl`` into a private folder that is removed at exit.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import tempfile
from urllib.parse import parse_qsl, quote, unquote, urlsplit

REDACTED = "********"

# Query parameters libpq understands, passed as they are, mapped to their environment variables.
LIBPQ_PARAMS = {
    "application_name": "PGAPPNAME",
    "options": "PGOPTIONS",
    "target_session_attrs": "PGTARGETSESSIONATTRS",
    "connect_timeout": "PGCONNECT_TIMEOUT",
    "gssencmode": "PGGSSENCMODE",
    "channel_binding": "PGCHANNELBINDING",
    "sslsni": "PGSSLSNI",
    "ssl_min_protocol_version": "PGSSLMINPROTOCOLVERSION",
    "ssl_max_protocol_version": "PGSSLMAXPROTOCOLVERSION",
    "host": "PGHOST",
    "port": "PGPORT",
}
# TLS parameters, translated by tls_settings (Prisma's meaning first, then libpq's own).
TLS_PARAMS = frozenset(
    {"sslmode", "sslaccept", "sslcert", "sslidentity", "sslpassword", "sslrootcert", "sslkey", "sslcrl", "sslcrldir"}
)
# Parameters only Prisma reads; dropped for libpq tools.
PRISMA_ONLY_PARAMS = frozenset(
    {
        "schema",
        "connection_limit",
        "pool_timeout",
        "pgbouncer",
        "statement_cache_size",
        "socket_timeout",
        "single_use_connections",
        "max_idle_connection_lifetime",
        "max_connection_lifetime",
    }
)
SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_VERIFYING = ("verify-ca", "verify-full")


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


def parse_database_url(url: str | None, schema_dir: str | None = None, *, tls: bool = True) -> dict:
    """Split a Prisma PostgreSQL URL into its parts.

    Returns ``host``, ``port``, ``user``, ``password``, ``database``,
    ``schema`` (default ``public``), ``libpq_env`` (environment for psql /
    pg_dump, password and TLS settings included), ``tls`` (what the tools
    check, see ``tls_settings``), ``dropped`` (Prisma-only or unknown
    parameters that were left out), ``secrets`` (every secret value the URL
    holds, for redact), ``pgbouncer`` (the URL says ``pgbouncer=true``) and ``display`` (built from the parsed parts, the
    password and secret parameters replaced, safe to print).

    ``schema_dir`` is the folder of the Prisma schema file, against which a
    relative ``sslcert``/``sslidentity`` is read (as Prisma reads it). With
    ``tls=False`` the TLS parameters are not translated nor their files
    checked (for displays and redaction only: the result must not reach a tool).
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
        if key in ("password", "port") or key in TLS_PARAMS:
            continue
        var = LIBPQ_PARAMS.get(key)
        if var is None:
            dropped.append(key)
        else:
            env[var] = value
    secrets = sorted({v for v in (password, password_raw, query.get("sslpassword"), query.get("sslidentity")) if v})
    settings = tls_settings(query, schema_dir) if tls else {"env": {}}
    env.update(settings.pop("env"))
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
        "tls": settings,
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


# What to do instead of a relative path when the schema's folder is not known.
_SET_SCHEMA_DIR = "set schema_dir to the folder of the Prisma schema file, or give an absolute path"


def tls_settings(query: dict, schema_dir: str | None = None) -> dict:
    """The libpq settings that check the server as Prisma's URL tells Prisma to, never less.

    ``query`` is the URL's query parameters (decoded). Returns ``env`` (PGSSLMODE, PGSSLROOTCERT,
    PGSSLCRL ...), ``sslmode`` (what libpq gets, None for its default ``prefer``), ``verify``
    (``full``, ``ca``, ``none`` or ``libpq`` - libpq's own rules for a libpq sslmode given as such),
    ``sslrootcert`` (the CA file the tools trust, None when they check nothing or libpq chooses),
    ``ca`` (Prisma's sslcert, resolved) and ``identity`` (Prisma's sslidentity, resolved; converted
    by ``client_identity``). Raises DatabaseUrlError (one line naming the parameter, never its
    value) when a setting cannot be honoured for libpq tools.
    """
    mode = query.get("sslmode") or None
    if mode is not None and mode not in SSLMODES:
        raise DatabaseUrlError(
            "the URL's sslmode is not one libpq knows: give disable, prefer or require (what Prisma knows),"
            " or verify-ca / verify-full"
        )
    if query.get("sslkey"):
        raise DatabaseUrlError(
            "sslkey is libpq's client key, which Prisma does not read (in a Prisma URL sslcert is the server's CA):"
            " give the client certificate and key to both as sslidentity=<PKCS#12 file> with sslpassword"
        )
    # Prisma: sslaccept absent = accept_invalid_certs (nothing checked); strict or any other value = strict.
    accept = query.get("sslaccept")
    strict = accept is not None and accept != "accept_invalid_certs"
    ca = _prisma_file("sslcert", query.get("sslcert"), schema_dir)
    if ca:
        _require_pem_certificate(ca)
    identity = _prisma_file("sslidentity", query.get("sslidentity"), schema_dir)
    env = {}
    for name, var in (("sslrootcert", "PGSSLROOTCERT"), ("sslcrl", "PGSSLCRL"), ("sslcrldir", "PGSSLCRLDIR")):
        value = query.get(name)
        if not value:
            continue
        if not os.path.isabs(value) and not (name == "sslrootcert" and value == "system"):
            raise DatabaseUrlError(
                f"{name} is a relative path, which psql and pg_dump would read from a folder of their own:"
                " give an absolute path"
            )
        env[var] = value

    if mode == "disable":
        libpq_mode = "disable"  # no TLS, for Prisma too, whatever sslaccept says
    elif strict:
        libpq_mode = "verify-full"  # chain and host name; with Prisma's prefer libpq also insists on TLS
    else:
        libpq_mode = mode  # Prisma checks nothing: require stays require, prefer (the default) stays prefer
    root = env.get("PGSSLROOTCERT")
    if root is None and libpq_mode in _VERIFYING:
        root = ca or (system_ca_bundle() if strict else None)
        if strict and root is None:
            raise DatabaseUrlError(
                "sslaccept=strict checks the server against the system's CAs, and no CA bundle was found on this"
                " host for psql and pg_dump: give the server's CA as sslcert"
            )
        if root:
            env["PGSSLROOTCERT"] = root
    if libpq_mode:
        env["PGSSLMODE"] = libpq_mode
    if libpq_mode == "disable":
        verify = "none"
    elif strict:
        verify = "full"
    elif libpq_mode in _VERIFYING:
        verify = "libpq" if root is None else libpq_mode.partition("-")[2]
    elif root:
        verify = "libpq"  # libpq's sslrootcert given as such: with prefer/require libpq checks the chain
    else:
        verify = "none"
    return {
        "env": env,
        "sslmode": libpq_mode,
        "verify": verify,
        "sslrootcert": env.get("PGSSLROOTCERT") if verify != "none" else None,
        "ca": ca,
        "identity": identity,
    }


def _prisma_file(name: str, value: str | None, schema_dir: str | None) -> str | None:
    """A file named by Prisma's sslcert or sslidentity: absolute, or relative to the schema's folder
    (psl's set_config_dir), readable. Prisma reads it whatever sslaccept says, and fails without it."""
    if not value:
        return None
    if os.path.isabs(value):
        path = value
    elif not schema_dir:
        raise DatabaseUrlError(
            f"{name} is a relative path, which Prisma reads from the folder of the schema file, and that folder is"
            f" not known here: {_SET_SCHEMA_DIR}"
        )
    else:
        path = os.path.abspath(os.path.join(schema_dir, value))
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        where = "" if os.path.isabs(value) else f" (relative to schema_dir {schema_dir})"
        raise DatabaseUrlError(
            f"{name} names a file that cannot be read on this host{where}: check the path and its permissions"
            + ("" if os.path.isabs(value) else f", or {_SET_SCHEMA_DIR}")
        )
    return path


def _require_pem_certificate(path: str) -> None:
    try:
        with open(path, "rb") as fh:
            data = fh.read(1 << 20)
    except OSError:
        data = b""
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise DatabaseUrlError(
            "sslcert names a file that holds no PEM certificate: Prisma reads sslcert as the server's CA"
            " in PEM form (-----BEGIN CERTIFICATE-----)"
        )


def system_ca_bundle() -> str | None:
    """The CA bundle OpenSSL trusts on this host (what Prisma's strict check adds sslcert to), or None."""
    try:
        import ssl

        paths = ssl.get_default_verify_paths()
    except (ImportError, AttributeError):  # pragma: no cover - a Python without ssl
        return None
    for candidate in (os.environ.get(paths.openssl_cafile_env or ""), paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.R_OK):
            return candidate
    return None


def client_identity(conn: dict, openssl: str | None = None) -> None:
    """Give psql/pg_dump the client certificate and key of Prisma's ``sslidentity``.

    libpq cannot read PKCS#12: ``openssl pkcs12`` converts it into a private folder (0700, files
    0600, the key unencrypted so that libpq needs no password) that is removed when the process
    exits (``remove_client_identity`` removes it sooner). The sslpassword reaches openssl on its
    standard input only - never on a command line or in an environment. Sets PGSSLCERT and
    PGSSLKEY in ``conn["libpq_env"]``; does nothing without sslidentity. Raises DatabaseUrlError.
    """
    tls = conn.get("tls") or {}
    identity = tls.get("identity")
    if not identity or tls.get("identity_dir"):
        return
    openssl = openssl or shutil.which("openssl")
    if not openssl:
        raise DatabaseUrlError(
            "sslidentity is a PKCS#12 file, which psql and pg_dump cannot read, and openssl (which converts it"
            " for them) is not installed on this host: install openssl"
        )
    password = conn.get("sslpassword") or ""
    folder = tempfile.mkdtemp(prefix="prisma-tls-")
    atexit.register(shutil.rmtree, folder, True)
    try:
        key = _pkcs12(openssl, identity, password, "-nocerts", "-nodes")
        cert = _pkcs12(openssl, identity, password, "-clcerts", "-nokeys")
        chain = _pkcs12(openssl, identity, password, "-cacerts", "-nokeys")
        if b"PRIVATE KEY-----" not in key or b"-----BEGIN CERTIFICATE-----" not in cert:
            raise DatabaseUrlError(
                "sslidentity holds no client certificate and key: give a PKCS#12 file with both"
                " (openssl pkcs12 -export -inkey KEY -in CERT)"
            )
        paths = {}
        for name, data in (("client.crt", cert + chain), ("client.key", key)):
            paths[name] = os.path.join(folder, name)
            fd = os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    conn["libpq_env"]["PGSSLCERT"] = paths["client.crt"]
    conn["libpq_env"]["PGSSLKEY"] = paths["client.key"]
    tls["identity_dir"] = folder


def remove_client_identity(conn: dict) -> None:
    """Remove the converted client identity now (it is removed at exit anyway)."""
    folder = (conn.get("tls") or {}).pop("identity_dir", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        conn["libpq_env"].pop("PGSSLCERT", None)
        conn["libpq_env"].pop("PGSSLKEY", None)


def _pkcs12(openssl: str, path: str, password: str, *what: str) -> bytes:
    """One ``openssl pkcs12`` read of ``path``, the password on stdin; OpenSSL 3 reads old
    (RC2-encrypted) files only with -legacy."""
    for legacy in ((), ("-legacy",)):
        proc = subprocess.run(
            [openssl, "pkcs12", "-in", path, "-passin", "stdin", *legacy, *what],
            input=(password + "\n").encode(),
            capture_output=True,
            check=False,
            timeout=60,
        )
        if proc.returncode == 0:
            return proc.stdout
    # openssl's own words are left out: nothing of the file or its password is ever shown
    raise DatabaseUrlError(
        "openssl could not read the PKCS#12 file named by sslidentity: check that sslpassword is its password"
        " and that the file is a PKCS#12 identity"
    )


_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-z][a-z0-9+.\-]*://[^:/@\s]*:)(?P<pw>[^\s/]+)(?P<at>@)", re.I)


_SECRET_PARAMS = re.compile(r"(?P<key>[?&](?:sslpassword|password|sslidentity)=)(?P<value>[^&#\s]*)", re.I)


def redact_url(url: str) -> str:
    """The URL with its password (and secret query parameters) replaced by ********: the parsed
    display when it parses, else the patterns below (an unparseable URL is never shown by this
    project's messages)."""
    try:
        return parse_database_url(url, tls=False)["display"]
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
        found.update(parse_database_url(url, tls=False)["secrets"])
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


# The settings a session may be given in a URL's ``options`` (PostgreSQL's "-c name=value"): durations.
_DURATION = re.compile(r"^[0-9]+(\.[0-9]+)?\s*(us|ms|s|min|h|d)?$")


def session_url(url: str, settings: dict, application_name: str | None = None) -> tuple[str, str]:
    """The URL with ``settings`` (``{"lock_timeout": "5s"}``) added to its ``options`` query parameter as
    ``-c name=value`` (after any the URL already has: the last wins), and ``application_name`` set when
    the URL has none. Returns ``(url, application_name in force)``.

    This is how session settings reach every engine Prisma may run a migration with: its native
    schema engine (quaint passes ``options`` and ``application_name`` in the startup message and
    reads no libpq environment variable such as PGOPTIONS), node-postgres behind ``@prisma/adapter-pg``
    (pg-connection-string reads both), and libpq tools. Only the query string is rewritten: the
    user, password and host are kept byte for byte. Raises ValueError for a value that is not a
    PostgreSQL duration (nothing else may enter a startup option)."""
    extra = []
    for name, value in settings.items():
        value = str(value or "").strip()
        if not value:
            continue
        if not _DURATION.match(value):
            raise ValueError(f"{name} {value!r} is not a PostgreSQL duration such as 5s or 2min")
        extra.append(f"-c {name}={value.replace(' ', '')}")
    base, hash_, fragment = url.partition("#")
    base, _q, query = base.partition("?")
    pairs = parse_qsl(query, keep_blank_values=True)
    names = [k for k, _v in pairs]
    if extra:
        if "options" in names:
            pairs = [(k, f"{v} {' '.join(extra)}".strip() if k == "options" else v) for k, v in pairs]
        else:
            pairs.append(("options", " ".join(extra)))
    if application_name and "application_name" not in names:
        pairs.append(("application_name", application_name))
    in_force = next((v for k, v in pairs if k == "application_name"), "")
    if not pairs:
        return url, in_force
    encoded = "&".join(f"{quote(k, safe='')}={quote(v, safe='/:')}" for k, v in pairs)
    return f"{base}?{encoded}{hash_}{fragment}", in_force
