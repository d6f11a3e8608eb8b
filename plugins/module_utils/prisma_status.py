"""Turn what the Prisma CLI prints into facts a playbook can decide on.

Pure standard-library Python with no Ansible import, so the modules, the
filter plugin and the unit tests share it (modules import it as
``ansible.module_utils.prisma_status``).

Two public parsers:

* ``parse_migrate_status(output, rc)`` for ``prisma migrate status``;
* ``parse_migrate_deploy(output, rc)`` for ``prisma migrate deploy``.

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

import json
import re

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

_NAME = re.compile(r"^[\w.\-]+$")
# "migration", "migrations" or "migration(s)": Prisma uses all three.
_MIG = r"migration(?:s|\(s\))?"


def clean_lines(output: str | bytes | None) -> list[str]:
    """Strip colours, normalise line endings, drop package-manager noise and
    the driver-adapter warning block. Blank lines are kept (they end lists)."""
    if output is None:
        return []
    if isinstance(output, bytes):
        output = output.decode("utf-8", errors="replace")
    text = _ANSI.sub("", output).replace("\r\n", "\n").replace("\r", "\n")
    lines: list[str] = []
    in_adapter_warning = False
    for raw in text.split("\n"):
        line = raw.rstrip()
        if line.startswith(_ADAPTER_WARNING_START):
            in_adapter_warning = True
            continue
        if in_adapter_warning:
            if line.startswith(_ADAPTER_WARNING_END):
                in_adapter_warning = False
            continue
        if _NOISE.match(line):
            continue
        lines.append(line)
    return lines


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

_DATASOURCE = re.compile(r'^Datasource "[^"]*"(?::|\s+-)\s*(?P<rest>.*)$')
_DATASOURCE_DB = re.compile(r'database "(?P<db>[^"]*)"')
_DATASOURCE_SCHEMA = re.compile(r'schemas? "(?P<schema>[^"]*)"')

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


def _datasource(lines: list[str]) -> tuple[str | None, str | None]:
    for line in lines:
        m = _DATASOURCE.match(line.strip())
        if m:
            db = _DATASOURCE_DB.search(m.group("rest"))
            schema = _DATASOURCE_SCHEMA.search(m.group("rest"))
            return (db.group("db") if db else None, schema.group("schema") if schema else None)
    return None, None


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


def _names_after(lines: list[str], start: int) -> list[str]:
    """Migration names listed one per line after a header at ``start``.
    The list ends at the first blank line after a name, or a non-name line."""
    names: list[str] = []
    for line in lines[start + 1 :]:
        stripped = line.strip()
        if not stripped:
            if names:
                break
            continue
        if not _NAME.match(stripped):
            break
        names.append(stripped)
    return names


# --- migrate status ----------------------------------------------------------

_FOUND = re.compile(rf"^(?P<n>\d+) {_MIG} found in\b")
_NONE_FOUND = re.compile(r"^No migrations? found in\b")
_UP_TO_DATE = re.compile(r"^Database schema is up to date!?$")
_PENDING_HEADER = re.compile(rf"^Following {_MIG} (?:have|has) not yet been applied:?$")
_FAILED_HEADER = re.compile(rf"^Following {_MIG} (?:have|has) failed:?$")
_NOT_MANAGED = re.compile(r"^The current database is not managed by Prisma Migrate\.?")
_DIVERGED = re.compile(r"^Your local migration history and the migrations table from your database are different")
_LAST_COMMON = re.compile(r"^The last common migration is:\s*(?P<name>\S+)\s*$")
_NO_COMMON = re.compile(r"^You have no common migration", re.I)
_DIVERGED_PENDING = re.compile(rf"^The {_MIG} (?:have|has) not yet been applied:?$")
_DIVERGED_MISSING = re.compile(rf"^The {_MIG} from the database (?:are|is) not found locally in .*:$")


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

    lines = clean_lines(output)
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
            result["pending"] = _names_after(lines, i)
        elif _FAILED_HEADER.match(s):
            signals.add("failed")
            result["failed"] = _names_after(lines, i)
        elif _NOT_MANAGED.match(s):
            signals.add("not_managed")
        elif _DIVERGED.match(s):
            signals.add("diverged")
        elif m := _LAST_COMMON.match(s):
            # Prisma prints "null" when the histories share no migration.
            result["last_common_migration"] = None if m.group("name") == "null" else m.group("name")
            signals.add("diverged")
        elif _NO_COMMON.match(s):
            signals.add("diverged")
        elif _DIVERGED_PENDING.match(s):
            signals.add("diverged")
            result["pending"] = _names_after(lines, i)
        elif _DIVERGED_MISSING.match(s):
            signals.add("diverged")
            result["missing_locally"] = _names_after(lines, i)

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
_TREE_DIR = re.compile(r"^\s*└─\s*(?P<name>[^\s/]+)/\s*$")
_ALL_APPLIED = re.compile(r"^All migrations have been successfully applied\.?$")
_NOTHING_PENDING = re.compile(r"^No pending migrations to apply\.?$")
_MODIFIED_HEADER = re.compile(rf"^WARNING:? The following {_MIG} (?:have|has) been modified since (?:they|it) w")
_MIGRATION_NAME = re.compile(r"^Migration name:\s*(?P<name>\S+)")
_P3009_NAME = re.compile(r"^The `(?P<name>[^`]+)` migration started at .* failed")
_BACKTRACE_NAME = re.compile(r'migration_name="(?P<name>[^"]+)"')
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
    lines = clean_lines(output)
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
            for tree_line in lines[i + 1 :]:
                if m := _TREE_DIR.match(tree_line):
                    result["applied"].append(m.group("name"))
                elif tree_line.strip() and not tree_line.strip().startswith(("migrations/", "└─")):
                    break
        elif _ALL_APPLIED.match(s):
            all_applied = True
        elif _NOTHING_PENDING.match(s):
            nothing_pending = True
        elif _MODIFIED_HEADER.match(s):
            result["modified"] = _names_after(lines, i)
        elif (m := _CREATED.match(s)) and result["database_created"] is False:
            result["database_created"] = True
            created = m.group("name") or "(unnamed)"
            result["database"] = result["database"] or m.group("name")
        if result["failed_migration"] is None:
            m = _MIGRATION_NAME.match(s) or _P3009_NAME.match(s) or _BACKTRACE_NAME.search(s)
            if m:
                result["failed_migration"] = m.group("name")
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
