"""Find destructive statements in migration SQL (pure Python, no Ansible).

A statement is destructive when it can lose data or narrow what existing data
may be: DROP TABLE / SCHEMA / COLUMN / VIEW / TYPE / INDEX, TRUNCATE, DELETE
without WHERE, ALTER COLUMN … TYPE,
RENAME. Comments and string literals are ignored, so a commented-out DROP does
not count and a DROP inside a string does not either.
"""

from __future__ import annotations

import os
import re

# (kind, pattern applied to a statement with comments and literals blanked)
_RULES = (
    ("drop_table", re.compile(r"^\s*DROP\s+TABLE\b", re.I)),
    ("drop_schema", re.compile(r"^\s*DROP\s+SCHEMA\b", re.I)),
    ("drop_view", re.compile(r"^\s*DROP\s+(?:MATERIALIZED\s+)?VIEW\b", re.I)),
    ("drop_type", re.compile(r"^\s*DROP\s+TYPE\b", re.I)),
    ("drop_index", re.compile(r"^\s*DROP\s+INDEX\b", re.I)),
    ("truncate", re.compile(r"^\s*TRUNCATE\b", re.I)),
    ("delete_without_where", re.compile(r"^\s*DELETE\s+FROM\b(?!.*\bWHERE\b)", re.I | re.S)),
    (
        "drop_column",
        re.compile(r"^\s*ALTER\s+TABLE\b.*\bDROP\s+(?:COLUMN\b|(?!CONSTRAINT\b|DEFAULT\b|NOT\b)\"?\w)", re.I | re.S),
    ),
    (
        "alter_column_type",
        re.compile(r"^\s*ALTER\s+TABLE\b.*\bALTER\s+(?:COLUMN\s+)?\S+\s+(?:SET\s+DATA\s+)?TYPE\b", re.I | re.S),
    ),
    ("rename", re.compile(r"^\s*ALTER\s+(?:TABLE|INDEX|TYPE|SCHEMA)\b.*\bRENAME\b", re.I | re.S)),
)

# Kinds after which a table may legitimately have fewer rows.
ROW_LOSS_KINDS = frozenset({"drop_table", "truncate", "delete_without_where", "drop_schema", "rename"})

_TABLE_AFTER = {
    "rename": re.compile(r"ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(?P<names>\S+)\s+RENAME\s+TO\b", re.I),
    "drop_table": re.compile(r"DROP\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?P<names>[^;]+)", re.I),
    "truncate": re.compile(
        r"TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?(?P<names>[^;]+?)(?:\s+(?:RESTART|CONTINUE|CASCADE|RESTRICT)\b|$)", re.I
    ),
    "delete_without_where": re.compile(r"DELETE\s+FROM\s+(?:ONLY\s+)?(?P<names>\S+)", re.I),
}


def _blank_comments_and_literals(sql: str) -> str:
    """Replace comments and string literals by spaces, keeping newlines and length."""
    out = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if ch == "-" and nxt == "-":
            end = sql.find("\n", i)
            end = n if end < 0 else end
            out.append(" " * (end - i))
            i = end
        elif ch == "/" and nxt == "*":
            end = sql.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out.append(re.sub(r"[^\n]", " ", sql[i:end]))
            i = end
        elif ch == "'":
            j = i + 1
            while j < n:
                if sql[j] == "'" and (j + 1 < n and sql[j + 1] == "'"):
                    j += 2
                    continue
                if sql[j] == "'":
                    break
                j += 1
            out.append("'" + re.sub(r"[^\n]", " ", sql[i + 1 : j]) + ("'" if j < n else ""))
            i = j + 1
        elif ch == "$":
            m = re.match(r"\$[A-Za-z_]*\$", sql[i:])
            if m:
                tag = m.group(0)
                end = sql.find(tag, i + len(tag))
                end = n if end < 0 else end + len(tag)
                out.append(re.sub(r"[^\n]", " ", sql[i:end]))
                i = end
            else:
                out.append(ch)
                i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tables(kind: str, statement: str) -> list[str]:
    pattern = _TABLE_AFTER.get(kind)
    if not pattern:
        return []
    m = pattern.search(statement)
    if not m:
        return []
    names = []
    for raw in m.group("names").split(","):
        name = raw.strip().split()[0] if raw.strip() else ""
        name = name.split(".")[-1].strip('"')
        if name and name.upper() not in ("CASCADE", "RESTRICT"):
            names.append(name)
    return names


def scan_sql(sql: str, file: str = "") -> list[dict]:
    """Destructive statements in ``sql``: ``{file, line, kind, statement, tables}``.
    ``line`` is where the statement starts (1-based)."""
    blank = _blank_comments_and_literals(sql)
    found = []
    start = 0
    for m in re.finditer(r";|$", blank):
        end = m.end()
        stmt = blank[start : m.start()]
        if stmt.strip():
            leading = len(stmt) - len(stmt.lstrip())
            line = blank.count("\n", 0, start + leading) + 1
            for kind, pattern in _RULES:
                if pattern.search(stmt):
                    original = " ".join(sql[start + leading : m.start()].split())
                    found.append(
                        {
                            "file": file,
                            "line": line,
                            "kind": kind,
                            "statement": original[:200],
                            "tables": _tables(kind, stmt),
                        }
                    )
                    break
        start = end
        if m.start() == len(blank):
            break
    return found


def scan_migrations(project_dir: str, migrations_dir: str, names) -> list[dict]:
    """scan_sql over the migration.sql of each named migration (paths shown relative to project_dir)."""
    found = []
    for name in names:
        path = os.path.join(migrations_dir, name, "migration.sql")
        with open(path, encoding="utf-8", errors="replace") as fh:
            found.extend(scan_sql(fh.read(), os.path.relpath(path, project_dir)))
    return found
