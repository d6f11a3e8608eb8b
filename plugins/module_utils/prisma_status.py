"""Turn what the Prisma CLI prints into facts a playbook can decide on.

Pure standard-library Python with no Ansible import, so the modules, the
filter plugin and the unit tests share it (modules import it as
``ansible.module_utils.prisma_status``).

Two public parsers:

* ``parse_migrate_status(output, rc)`` for ``prisma migrate status``;
* ``parse_migrate_deploy(output, rc)`` for ``prisma migrate deploy``;

and, for the preflight's question "is the database Prisma migrates the one the
URL names?", ``parse_datasource(output)`` (the ``Datasource "db": …`` line in
full) and ``datasource_check(datasource, url)``.

Migration names are taken as Prisma prints them: any folder name (spaces,
``+``, non-ASCII letters, emoji, quotes, leading or trailing spaces, text that
looks like one of Prisma's own headers). A list of names is every line after
its header up to the first blank line, as Prisma prints it; the lines of a
list are never read as headers, errors or the datasource.

``output`` is everything the command printed, stdout and stderr in any order.
The message forms are those of Prisma's ``MigrateStatus.ts`` /
``MigrateDeploy.ts`` (stable from 4.x to 7.x), of its user-facing errors
(``Error: P1001: …``, ``Error code: P1012``) and of the WebAssembly schema
engine used with driver adapters (plain-English errors without a code, and a
``migration_name="…"`` backtrace for a failed migration).

Anything not recognised is reported as ``state: error`` / ``result: error``:
the parsers never guess that a database is up to date.

Prisma 8 replaces these commands with JSON output (``prisma migration status
--json``). ``looks_like_json`` lets a caller route such output elsewhere; the
text parsers refuse it with a clear message rather than misread it.
"""

from __future__ import annotations

import ipaddress
import json
import re
from urllib.parse import unquote

STATES = ("up_to_date", "pending", "failed", "diverged", "not_managed", "error")
DEPLOY_RESULTS = ("applied", "nothing_pending", "failed", "error")

# What the operator does next, per state (the modules' msg).
NEXT_STEP = {
    "up_to_date": "nothing to do",
    "pending": "apply them with playbooks/migrate.yml",
    "failed": (
        "the database holds a failed migration: restore the pre-migration snapshot with playbooks/rollback.yml,"
        " or fix the database by hand and mark the migration with 'prisma migrate resolve'"
    ),
    "diverged": (
        "the app checkout does not match the database: deploy the app version whose prisma/migrations"
        " matches production before migrating"
    ),
    "not_managed": "this database has no Prisma migration history: baseline it before using migrate deploy",
    "error": "check the URL, the network path to the database and the credentials, then run again",
}

# --- cleaning ----------------------------------------------------------------

_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)")

# Lines printed by package managers around the command, never by Prisma.
_NOISE = re.compile(
    r"""^(?:
        >\s                         # npm/pnpm script header: "> app@1.0.0 prisma …"
      | \s*WARN\b                   # pnpm:  " WARN  …"
      | \s*ELIFECYCLE\b             # pnpm:  " ELIFECYCLE  Command failed …"
      | npm\s+(?:warn|WARN|notice)\b
      | Environment\ variables\ loaded\ from\b
      | Loaded\ Prisma\ config\ from\b
      | Prisma\ config\ detected,\ skipping\b
      | Prisma\ schema\ loaded\ from\b
      | ┌|│|└(?!─\s)              # update-available box
    )""",
    re.VERBOSE,
)

# The driver-adapter warning block printed by Prisma 6 with prisma.config.ts.
_ADAPTER_WARNING_START = "WARNING: Your schema specifies the following datasource properties"
_ADAPTER_WARNING_END = "We recommend you to remove those properties"

# "migration", "migrations" or "migration(s)": Prisma uses all three.
_MIG = r"migration(?:s|\(s\))?"


def _plain_lines(output: str | bytes | None) -> list[str]:
    """The output's lines without colours, with ``\n`` line endings and without the driver-adapter
    warning block; nothing else is touched (a migration name keeps its spaces)."""
    if output is None:
        return []
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="replace")
    text = _ANSI.sub("", output).replace("\r\n", "\n").replace("\r", "\n")
    lines: list[str] = []
    in_adapter_warning = False
    for line in text.split("\n"):
        if line.startswith(_ADAPTER_WARNING_START):
            in_adapter_warning = True
            continue
        if in_adapter_warning:
            if line.startswith(_ADAPTER_WARNING_END):
                in_adapter_warning = False
            continue
        lines.append(line)
    return lines


def clean_lines(output: str | bytes | None) -> list[str]:
    """Strip colours, normalise line endings, drop package-manager noise and
    the driver-adapter warning block. Blank lines are kept (they end lists)."""
    return [line.rstrip() for line in _plain_lines(output) if not _NOISE.match(line.rstrip())]


def looks_like_json(output: str | None) -> bool:
    """True when the output is a JSON document (Prisma 8's ``--json``)."""
    text = _ANSI.sub("", output or "").strip()
    if not text.startswith("{"):
        return False
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# --- shared pieces -----------------------------------------------------------

_DATASOURCE = re.compile(r'^Datasource "(?P<name>[^"]*)"(?::|\s+-)\s*(?P<rest>.*)$')
# The datasource line's start (a list of names ends at it: it starts Prisma's stdout).
_DS_LINE_START = re.compile(r'^Datasource "[^"]*"(?:: [A-Za-z][\w ]* database\b| - )')
# The line is read from its end: ' using driver adapter "…"' or ' at "…"', then ', schema(s) "…"',
# then '<Provider> database "…"' (the database is the URL's path as Prisma prints it, undecoded).
_DS_ADAPTER = re.compile(r'\s+using driver adapter "(?P<adapter>[^"]*)"$')
_DS_AT = re.compile(r'\s+at "(?P<location>[^"]*)"$')
_DS_SCHEMA = re.compile(r',\s+(?P<kind>schemas?) "(?P<value>.*)"$')
_DS_DATABASE = re.compile(r'^(?P<provider>.*?)(?:\s+database(?:\s+"(?P<database>.*)")?)?$')

_ERROR_LINE = re.compile(r"^Error:\s*(?P<body>.*)$")
_CODE_IN_ERROR = re.compile(r"^(?P<code>P\d{4})\b:?\s*(?P<rest>.*)$")
_ERROR_CODE_LINE = re.compile(r"^Error code:\s*(?P<code>P\d{4})\b")

# Connection failures that the WebAssembly engine prints without a code.
_INFERRED_CODES = (
    (re.compile(r"Can't reach database server", re.I), "P1001"),
    (re.compile(r"Authentication failed against database server", re.I), "P1000"),
    (re.compile(r"Database `?[^`\s]*`? does not exist", re.I), "P1003"),
    (re.compile(r"Timed out trying to acquire a postgres advisory lock", re.I), "P1002"),
    (re.compile(r"Timed out fetching a new connection|operation has timed out", re.I), "P1002"),
)


def _location(text: str) -> tuple[str | None, int | None]:
    """Host and port of Prisma's ``at "…"``: ``host:port``, ``host``, ``[v6]:port``, ``unix:/socket/dir``."""
    if text.startswith("unix:"):
        return text[5:] or None, None
    if text.startswith("/"):
        return text, None
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not port.isdigit():
            host, port = text, ""
    return host or None, int(port) if port.isdigit() else None


def _datasource_of(lines: list[str]) -> dict | None:
    """The first ``Datasource "db": …`` line, taken apart (None when Prisma printed none)."""
    for line in lines:
        m = _DATASOURCE.match(line.strip())
        if not m:
            continue
        rest = m.group("rest").strip()
        facts = dict.fromkeys(("location", "host", "port", "adapter", "schema", "schemas", "database_printed"))
        facts["name"] = m.group("name")
        if a := _DS_ADAPTER.search(rest):
            facts["adapter"], rest = a.group("adapter"), rest[: a.start()]
        elif a := _DS_AT.search(rest):
            facts["location"], rest = a.group("location"), rest[: a.start()]
            facts["host"], facts["port"] = _location(facts["location"])
        if a := _DS_SCHEMA.search(rest):
            if a.group("kind") == "schemas":
                facts["schemas"] = a.group("value").split(", ")
            else:
                facts["schema"] = a.group("value")
            rest = rest[: a.start()]
        d = _DS_DATABASE.match(rest.strip())
        facts["provider"] = d.group("provider").strip() or None
        facts["database_printed"] = d.group("database")
        facts["database"] = unquote(d.group("database")) if d.group("database") is not None else None
        facts["line"] = line.strip()
        return facts
    return None


def _datasource(lines: list[str]) -> tuple[str | None, str | None]:
    """(database, schema) as Prisma printed them; ``schemas "a, b"`` gives ``"a, b"``."""
    facts = _datasource_of(lines)
    if not facts:
        return None, None
    schema = ", ".join(facts["schemas"]) if facts["schemas"] else facts["schema"]
    return facts["database_printed"], schema


def parse_datasource(output: str | bytes | None) -> dict | None:
    """Prisma's ``Datasource "db": …`` line (``migrate status`` / ``migrate deploy`` output), taken apart:
    ``name``, ``provider``, ``database`` (percent-decoded; Prisma prints the URL's path undecoded) and
    ``database_printed``, ``schema`` or ``schemas`` (multiSchema), ``location`` as printed after ``at`` with its
    ``host`` and ``port`` (either may be absent), ``adapter`` (``using driver adapter "…"``: Prisma then prints
    no location), ``line`` and ``conflicting`` (other, different datasource lines: a migration folder named like
    one ends the list it is in). None when Prisma printed no such line."""
    prose, _lists = _read(output)
    facts = _datasource_of(prose)
    if facts:
        lines = {ln.strip() for ln in prose if _DATASOURCE.match(ln.strip())}
        facts["conflicting"] = sorted(lines - {facts["line"]})
    return facts


def _errors(lines: list[str]) -> tuple[str | None, str | None]:
    """Return (error_code, error_message) from the first error shown."""
    code = None
    message = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        m = _ERROR_CODE_LINE.match(stripped)
        if m and code is None:
            code = m.group("code")
            continue
        m = _ERROR_LINE.match(stripped)
        if m and message is None:
            body = m.group("body").strip()
            cm = _CODE_IN_ERROR.match(body)
            if cm:
                code = code or cm.group("code")
                body = cm.group("rest").strip()
            if not body:  # "Error: P3009" then the explanation further down
                body = next((nxt.strip() for nxt in lines[i + 1 :] if nxt.strip()), "")
            message = body or None
    if code is None:
        text = "\n".join(lines)
        for pattern, inferred in _INFERRED_CODES:
            if pattern.search(text):
                code = inferred
                break
    if message is None and code is not None:
        # A known failure printed without an "Error:" prefix.
        for line in lines:
            if any(p.search(line) for p, c in _INFERRED_CODES if c == code):
                message = line.strip()
                break
    return code, message


# --- lists of migration names --------------------------------------------------

# Lines that start a section of Prisma's output: after a header and blank lines (Prisma 4 printed blank
# lines before the names), such a line means the list was empty.
_SECTION = re.compile(
    r"""^(?:To\ apply\ migrations|During\ development|The\ failed\ migration|Read\ more\ about
      | Your\ local\ migration\ history|Database\ schema\ is\ up\ to\ date|The\ current\ database\ is\ not
      | The\ last\ common\ migration|Error:|Error\ code:|\d+\ migrations?\ found|No\ migrations?\ found
      | Datasource\ "|All\ migrations\ have\ been|No\ pending\ migrations|Applying\ migration
      | (?:The\ )?[Ff]ollowing\ migration|The\ migrations?(?:\(s\))?\ (?:have|has|from\ the\ database)
      | WARNING)""",
    re.VERBOSE,
)


def _ends_list(line: str) -> bool:
    """A line that starts a stream (Prisma's "Prisma schema loaded from …", "Loaded Prisma config …", the
    datasource line, a package manager's line): when stderr and stdout are read one after the other, the other
    stream's first line follows the last name of a list directly."""
    return bool(_NOISE.match(line.rstrip()) or _DS_LINE_START.match(line.strip()))


def _list_after(lines: list[str], start: int) -> tuple[list[str], int]:
    """The names Prisma prints one per line after the header at ``start``, verbatim (spaces kept), up to the
    first blank line, the first line of another stream, or the end; returns them and the index where the list
    ended."""
    j = start + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    gap = j > start + 1
    names: list[str] = []
    while j < len(lines) and lines[j].strip() and not _ends_list(lines[j]):
        if gap and not names and _SECTION.match(lines[j].strip()):
            break  # "The migration have not yet been applied:", a blank line, then the next section
        names.append(lines[j])
        j += 1
    return names, j


def _tree_after(lines: list[str], start: int) -> tuple[list[str], int]:
    """The folder names of the tree ``migrate deploy`` prints after its applied header
    (``migrations/``, ``  └─ NAME/``, ``    └─ migration.sql``), up to the blank line after it."""
    names: list[str] = []
    j = start + 1
    while j < len(lines):
        line = lines[j]
        s = line.strip()
        if m := _TREE_DIR.match(line):
            names.append(m.group("name"))
        elif not s:
            if names:
                break
        elif s != "migrations/" and not s.startswith("└─"):
            break
        j += 1
    return names, j


def _read(output: str | bytes | None) -> tuple[list[str], dict[int, list[str]]]:
    """Split the output into prose lines (noise dropped) and the lists of migration names
    printed after each list header, keyed by the header's index in the prose. No line of a list is prose:
    a name that reads like a header or an error stays a name (only a line that starts a stream ends a list
    early, see ``_ends_list``)."""
    lines = _plain_lines(output)
    prose: list[str] = []
    lists: dict[int, list[str]] = {}
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if _NOISE.match(line.rstrip()):
            continue
        prose.append(line)  # as printed: "Migration name: NAME" keeps a trailing space of NAME
        s = line.strip()
        if any(header.match(s) for header in (*_LIST_HEADERS, _MODIFIED_HEADER)):
            lists[len(prose) - 1], i = _list_after(lines, i - 1)
        elif _APPLIED_HEADER.match(s):
            lists[len(prose) - 1], i = _tree_after(lines, i - 1)
    return prose, lists


# --- migrate status ----------------------------------------------------------

_FOUND = re.compile(rf"^(?P<n>\d+) {_MIG} found in\b")
_NONE_FOUND = re.compile(r"^No migrations? found in\b")
_UP_TO_DATE = re.compile(r"^Database schema is up to date!?$")
_PENDING_HEADER = re.compile(rf"^Following {_MIG} (?:have|has) not yet been applied:?$")
_FAILED_HEADER = re.compile(rf"^Following {_MIG} (?:have|has) failed:?$")
_NOT_MANAGED = re.compile(r"^The current database is not managed by Prisma Migrate\.?")
_DIVERGED = re.compile(r"^Your local migration history and the migrations table from your database are different")
_LAST_COMMON = re.compile(r"^The last common migration is: ?(?P<name>.*)$")
_NO_COMMON = re.compile(r"^You have no common migration", re.I)
_DIVERGED_PENDING = re.compile(rf"^The {_MIG} (?:have|has) not yet been applied:?$")
_DIVERGED_MISSING = re.compile(rf"^The {_MIG} from the database (?:are|is) not found locally in .*:$")
# Headers followed by one migration name per line (the deploy's modified warning is defined below).
_LIST_HEADERS = (_PENDING_HEADER, _FAILED_HEADER, _DIVERGED_PENDING, _DIVERGED_MISSING)


def _empty_status() -> dict:
    return {
        "state": "error",
        "in_sync": False,
        "pending": [],
        "failed": [],
        "missing_locally": [],
        "last_common_migration": None,
        "local_migration_count": None,
        "error_code": None,
        "error_message": None,
        "database": None,
        "schema": None,
        "summary": "",
    }


def parse_migrate_status(output: str, rc: int | None = None) -> dict:
    """Parse ``prisma migrate status`` output (stdout and stderr together)."""
    result = _empty_status()
    if looks_like_json(output if isinstance(output, str) else None):
        result["error_message"] = (
            "this is JSON output (Prisma 8 `prisma migration status --json`?), which the text parser does not read"
        )
        result["summary"] = _status_summary(result)
        return result

    lines, lists = _read(output)
    result["database"], result["schema"] = _datasource(lines)
    result["error_code"], result["error_message"] = _errors(lines)

    signals = set()
    for i, line in enumerate(lines):
        s = line.strip()
        if m := _FOUND.match(s):
            result["local_migration_count"] = int(m.group("n"))
        elif _NONE_FOUND.match(s):
            result["local_migration_count"] = 0
        elif _UP_TO_DATE.match(s):
            signals.add("up_to_date")
        elif _PENDING_HEADER.match(s):
            signals.add("pending")
            result["pending"] = lists.get(i, [])
        elif _FAILED_HEADER.match(s):
            signals.add("failed")
            result["failed"] = lists.get(i, [])
        elif _NOT_MANAGED.match(s):
            signals.add("not_managed")
        elif _DIVERGED.match(s):
            signals.add("diverged")
        elif m := _LAST_COMMON.match(line.lstrip()):
            # Prisma prints "null" when the histories share no migration.
            result["last_common_migration"] = None if m.group("name") in ("null", "") else m.group("name")
            signals.add("diverged")
        elif _NO_COMMON.match(s):
            signals.add("diverged")
        elif _DIVERGED_PENDING.match(s):
            signals.add("diverged")
            result["pending"] = lists.get(i, [])
        elif _DIVERGED_MISSING.match(s):
            signals.add("diverged")
            result["missing_locally"] = lists.get(i, [])

    state = "error"
    for candidate in ("diverged", "failed", "not_managed", "pending", "up_to_date"):
        if candidate in signals:
            state = candidate
            break
    # An error shown by Prisma overrides the weaker signals: never "up to date"
    # or a pending list from a command that also reported an error.
    if state in ("pending", "up_to_date") and result["error_message"]:
        state = "error"
    if state == "up_to_date" and rc not in (None, 0):
        state = "error"
        result["error_message"] = result["error_message"] or f"Prisma said up to date but exited {rc}"
    if state == "pending" and not result["pending"]:
        state = "error"
        result["error_message"] = "Prisma reported pending migrations but listed none (truncated output?)"
    if state == "failed" and not result["failed"]:
        state = "error"
        result["error_message"] = "Prisma reported failed migrations but listed none (truncated output?)"
    if state == "error" and not result["error_message"]:
        first = next((ln.strip() for ln in lines if ln.strip()), None)
        if rc == 127:
            result["error_message"] = "the Prisma command was not found (exit 127)"
        elif first is None:
            result["error_message"] = "the command printed nothing" + (f" and exited {rc}" if rc is not None else "")
        else:
            result["error_message"] = f"unrecognised output: {first}"
    result["state"] = state
    result["in_sync"] = state == "up_to_date"
    result["summary"] = _status_summary(result)
    return result


def _names(names: list[str], limit: int = 10) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" (+{len(names) - limit} more)" if len(names) > limit else "")


def _status_summary(r: dict) -> str:
    state = r["state"]
    if state == "up_to_date":
        return "database schema is up to date"
    if state == "pending":
        return f"{len(r['pending'])} migration(s) not yet applied: {_names(r['pending'])}"
    if state == "failed":
        return f"failed migration(s) in the database: {_names(r['failed'])}"
    if state == "diverged":
        parts = ["local migration history and the database differ"]
        if r["last_common_migration"]:
            parts.append(f"last common migration {r['last_common_migration']}")
        if r["missing_locally"]:
            parts.append(f"applied but missing locally: {_names(r['missing_locally'])}")
        if r["pending"]:
            parts.append(f"not yet applied: {_names(r['pending'])}")
        return "; ".join(parts)
    if state == "not_managed":
        return "the database is not managed by Prisma Migrate (no migration history)"
    code = f"{r['error_code']}: " if r["error_code"] else ""
    return f"prisma migrate status failed: {code}{r['error_message']}"


# --- migrate deploy ----------------------------------------------------------

_APPLIED_HEADER = re.compile(rf"^The following {_MIG} (?:have|has) been applied:?$")
# "  └─ NAME/" (a folder name cannot hold "/"; "└─ " is Prisma's, a leading space is the name's).
_TREE_DIR = re.compile(r"^\s*└─ (?P<name>.+)/\s*$")
_ALL_APPLIED = re.compile(r"^All migrations have been successfully applied\.?$")
_NOTHING_PENDING = re.compile(r"^No pending migrations to apply\.?$")
_MODIFIED_HEADER = re.compile(rf"^WARNING:? The following {_MIG} (?:have|has) been modified since (?:they|it) w")
_MIGRATION_NAME = re.compile(r"^\s*Migration name: (?P<name>.+)$")
_P3009_NAME = re.compile(r"^\s*The `(?P<name>.+)` migration started at \S.* failed")
# The WebAssembly engine's backtrace quotes the name as Rust's Debug does (\" \\ \n \u{…} escaped).
_BACKTRACE_NAME = re.compile(r'migration_name="(?P<name>(?:[^"\\]|\\.)+)"')
_RUST_ESCAPE = re.compile(r"\\(?:u\{(?P<hex>[0-9a-fA-F]{1,6})\}|(?P<char>.))")
_RUST_CHARS = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}


def _rust_unescape(text: str) -> str:
    def one(m):
        if m.group("hex"):
            return chr(int(m.group("hex"), 16))
        return _RUST_CHARS.get(m.group("char"), m.group("char"))

    return _RUST_ESCAPE.sub(one, text)


_DB_ERROR_CODE = re.compile(r"^Database error code:\s*(?P<code>\S+)")
_DB_ERROR_HEADER = re.compile(r"^Database error:\s*(?P<rest>.*)$")
_SQL_ERROR = re.compile(r"^(?:ERROR|FATAL):\s")
_CREATED = re.compile(
    r"^(?:PostgreSQL|MySQL|SQLite|CockroachDB|SQL Server|MongoDB|Prisma Postgres) database(?: (?P<name>\S+))? created\b"
)
_BACKTRACE_FRAME = re.compile(r"^\s*(?:\d+:|at |with )")


def _empty_deploy() -> dict:
    return {
        "result": "error",
        "applied": [],
        "failed_migration": None,
        "error_code": None,
        "error_message": None,
        "database_error": None,
        "database_error_code": None,
        "modified": [],
        "database_created": False,
        "database": None,
        "schema": None,
        "local_migration_count": None,
        "summary": "",
    }


def parse_migrate_deploy(output: str, rc: int | None = None) -> dict:
    """Parse ``prisma migrate deploy`` output (stdout and stderr together)."""
    result = _empty_deploy()
    lines, lists = _read(output)
    result["database"], result["schema"] = _datasource(lines)
    result["error_code"], result["error_message"] = _errors(lines)

    applied_header = all_applied = nothing_pending = False
    created = None
    for i, line in enumerate(lines):
        s = line.strip()
        if m := _FOUND.match(s):
            result["local_migration_count"] = int(m.group("n"))
        elif _NONE_FOUND.match(s):
            result["local_migration_count"] = 0
        elif _APPLIED_HEADER.match(s):
            applied_header = True
            result["applied"].extend(lists.get(i, []))
        elif _ALL_APPLIED.match(s):
            all_applied = True
        elif _NOTHING_PENDING.match(s):
            nothing_pending = True
        elif _MODIFIED_HEADER.match(s):
            result["modified"] = lists.get(i, [])
        elif (m := _CREATED.match(s)) and result["database_created"] is False:
            result["database_created"] = True
            created = m.group("name") or "(unnamed)"
            result["database"] = result["database"] or m.group("name")
        if result["failed_migration"] is None:
            if m := _MIGRATION_NAME.match(line) or _P3009_NAME.match(line):
                result["failed_migration"] = m.group("name")
            elif m := _BACKTRACE_NAME.search(line):
                result["failed_migration"] = _rust_unescape(m.group("name"))
        if result["database_error_code"] is None and (m := _DB_ERROR_CODE.match(s)):
            result["database_error_code"] = m.group("code")
        if result["database_error"] is None:
            if m := _DB_ERROR_HEADER.match(s):
                rest = m.group("rest").strip()
                result["database_error"] = rest or next((x.strip() for x in lines[i + 1 :] if x.strip()), None)
            elif _SQL_ERROR.match(s):
                result["database_error"] = s

    # The WebAssembly engine: "Error: external connector error" then the
    # database's complaint on the next line, then a backtrace.
    if result["database_error"] is None and result["failed_migration"]:
        for i, line in enumerate(lines):
            m = _ERROR_LINE.match(line.strip())
            if m and not _CODE_IN_ERROR.match(m.group("body")):
                nxt = next((x.strip() for x in lines[i + 1 :] if x.strip()), "")
                if nxt and not _BACKTRACE_FRAME.match(nxt):
                    result["database_error"] = nxt.rstrip(": ").strip() or None
                break

    if result["error_message"] is None and rc not in (None, 0):
        first = next((ln.strip() for ln in lines if ln.strip()), None)
        if rc == 127:
            result["error_message"] = "the Prisma command was not found (exit 127)"
        else:
            result["error_message"] = f"exited {rc}" + (f": {first}" if first else " and printed nothing")

    # Prisma's explicit success signals (exit 0 or no exit known, the applied tree and
    # "All migrations have been successfully applied." / "No pending migrations to apply.") win over a
    # stray "Error: ..." line that a config loader or a package-manager hook printed.
    succeeded = rc in (None, 0) and not result["failed_migration"] and result["error_code"] not in ("P3009", "P3018")
    if succeeded and ((applied_header and all_applied and result["applied"]) or nothing_pending):
        result["error_message"] = None
    if result["failed_migration"] or result["error_code"] in ("P3009", "P3018"):
        result["result"] = "failed"
        if result["error_code"] is None:
            result["error_code"] = "P3018"  # a migration failed to apply (engine printed no code)
    elif result["error_message"] or rc not in (None, 0):
        result["result"] = "error"
    elif applied_header and all_applied and result["applied"]:
        result["result"] = "applied"
    elif nothing_pending:
        result["result"] = "nothing_pending"
    else:
        result["result"] = "error"
        result["error_message"] = "unrecognised output: no applied list and no 'No pending migrations' line"
    result["summary"] = _deploy_summary(result, created)
    return result


def _deploy_summary(r: dict, created: str | None) -> str:
    res = r["result"]
    if res == "applied":
        text = f"applied {len(r['applied'])} migration(s): {_names(r['applied'])}"
    elif res == "nothing_pending":
        text = "no pending migrations to apply"
    elif res == "failed":
        name = r["failed_migration"] or "(name not shown)"
        text = f"migration {name} failed ({r['error_code']})"
        if r["database_error"]:
            text += f": {r['database_error']}"
        elif r["error_message"]:
            text += f": {r['error_message']}"
    else:
        code = f"{r['error_code']}: " if r["error_code"] else ""
        text = f"prisma migrate deploy failed: {code}{r['error_message']}"
    if r["database_created"]:
        text += f"; WARNING: deploy created database {created} (was the URL right?)"
    return text


# --- the database Prisma migrates ----------------------------------------------

POSTGRES_DEFAULT_PORT = 5432
WHERE_TO_LOOK = (
    "make Prisma use the URL the playbook is given: look for directUrl in schema.prisma, a prisma.config.ts that"
    " reads another variable (DIRECT_URL ...), a .env in the checkout, and prisma_env"
)


def _norm_host(host: str | None) -> str | None:
    """Host names compare case-insensitively; an IPv6 literal without brackets, in its short form; a socket
    directory without a trailing slash. localhost, 127.0.0.1 and ::1 stay different hosts."""
    if host is None:
        return None
    host = host.strip()
    if host.startswith("/"):
        return host.rstrip("/") or "/"
    host = host.lower()
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def _where(host: str | None, port: int | None) -> str:
    if not host:
        return "(host not printed)"
    if host.startswith("/"):
        return f"socket {host}"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port else shown


def _side(facts: dict, *, show_location: bool) -> str:
    schemas = facts.get("schemas")
    text = f'database "{facts["database"]}"' if facts.get("database") is not None else "no database"
    text += (
        f', schemas "{", ".join(schemas)}"'
        if schemas
        else (f', schema "{facts["schema"]}"' if facts.get("schema") is not None else ", no schema")
    )
    if show_location:
        text += f" at {_where(facts.get('host'), facts.get('port'))}"
    return text


def datasource_check(datasource: dict | None, url: dict, status_msg: str | None = None) -> dict:
    """Compare the database Prisma's ``migrate status`` says it reads (``parse_datasource``) with the one the
    URL names (``url``: ``database``, ``schema``, ``host``, ``port`` as prisma_url parsed them - the URL the
    snapshot, the run lock and the identity pins use).

    Compares what Prisma printed: database and schema always; host and port when Prisma printed where it
    connects (``at "HOST:PORT"``; with a driver adapter Prisma 6 prints ``using driver adapter "…"`` instead,
    and the database and schema it prints are those of schema.prisma's ``url``/``directUrl``, not the adapter's
    connection). An absent port is PostgreSQL's 5432. A URL whose host is a socket directory (``?host=/run/…``)
    is printed by Prisma as the URL's host name: host and port are then not compared. Returns ``ok``,
    ``compared``, ``not_compared``, ``differences``, ``prisma`` (what Prisma printed, or None), ``url``,
    ``note`` and ``msg`` (one line, names both sides, never the URL's text)."""
    url_side = {k: url.get(k) for k in ("database", "schema", "host", "port")}
    result = {
        "ok": False,
        "compared": [],
        "not_compared": [],
        "differences": [],
        "prisma": None,
        "url": url_side,
        "note": None,
        "msg": "",
    }
    ours = _side(url_side, show_location=True)
    if not datasource:
        result["not_compared"] = ["database", "schema", "host", "port"]
        reason = f" ({status_msg})" if status_msg else ""
        result["msg"] = (
            f"prisma migrate status printed no Datasource line{reason}, so the database it migrates cannot be"
            f" compared with the URL's ({ours}): fix what stops Prisma, then run again"
        )
        return result
    prisma = {k: datasource.get(k) for k in ("provider", "database", "schema", "schemas", "host", "port", "adapter")}
    result["prisma"] = prisma
    if datasource.get("conflicting"):
        result["not_compared"] = ["database", "schema", "host", "port"]
        result["msg"] = (
            f"prisma migrate status printed {len(datasource['conflicting']) + 1} different Datasource lines (a"
            " migration folder named like one?), so the database it migrates cannot be told: rename that folder"
        )
        return result
    differences = []
    if (prisma["provider"] or "").lower() not in ("postgresql", "postgres"):
        differences.append("provider")
    result["compared"].append("database")
    if prisma["database"] != url_side["database"]:
        differences.append("database")
    result["compared"].append("schema")
    if prisma["schemas"]:
        if sorted(set(prisma["schemas"])) != [url_side["schema"]]:
            differences.append("schema")
    elif prisma["schema"] != url_side["schema"]:
        differences.append("schema")
    notes = []
    socket_url = (url_side["host"] or "").startswith("/")
    if prisma["host"] is None:
        result["not_compared"] += ["host", "port"]
        if prisma["adapter"]:
            notes.append(
                f'with the driver adapter "{prisma["adapter"]}" Prisma prints no host and port, and the database and'
                " schema it prints are schema.prisma's url (or directUrl), not the adapter's connection: the pending"
                " list is checked against the database's own history too"
            )
        else:
            notes.append("Prisma printed no host and port")
    elif socket_url and not prisma["host"].startswith("/"):
        result["not_compared"] += ["host", "port"]
        notes.append(
            "the URL's host is a socket directory, which Prisma does not print (it prints the URL's host name)"
        )
    else:
        result["compared"] += ["host", "port"]
        if _norm_host(prisma["host"]) != _norm_host(url_side["host"]):
            differences.append("host")
        if (prisma["port"] or POSTGRES_DEFAULT_PORT) != (url_side["port"] or POSTGRES_DEFAULT_PORT):
            differences.append("port")
    result["differences"] = differences
    result["note"] = "; ".join(notes) or None
    result["ok"] = not differences
    theirs = _side(prisma, show_location="host" in result["compared"])
    if prisma["provider"] and "provider" in differences:
        theirs = f"a {prisma['provider']} datasource, {theirs}"
    if result["ok"]:
        result["msg"] = (
            f"prisma migrate status reads {theirs}, as the URL does; compared: {', '.join(result['compared'])}"
            + (
                f" (not compared: {', '.join(result['not_compared'])} - {result['note']})"
                if result["not_compared"]
                else ""
            )
        )
    else:
        result["msg"] = (
            f"prisma migrate status reads {theirs}, but the URL the snapshot, the run lock and the identity pins use"
            f" names {ours} (differs: {', '.join(differences)}): {WHERE_TO_LOOK}"
        )
    return result
