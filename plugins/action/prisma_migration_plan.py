"""Action plugin: prisma_migration_plan - read each pending statement with PostgreSQL's parser and squawk.

Runs on the controller, where the project's venv has pglast and squawk-cli (requirements.txt): the
target host only sent the SQL text (prisma_database_info's history.pending_sql) and needs nothing new.
The classification is plugins/module_utils/sql_plan.py, the lint plugins/module_utils/sql_lint.py.
"""

from __future__ import annotations

import os
import sys

from ansible.errors import AnsibleActionFail
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

# The same files the modules ship, imported here on the controller (as plugins/filter/prisma.py does).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))

from ddl_estimate import RANGE, RateError, estimate, human_seconds, load_rates  # noqa: E402
from prisma_locks import normalize_query  # noqa: E402
from sql_lint import SqlLintError, lint_migrations  # noqa: E402
from sql_plan import SHARE_UPDATE_EXCLUSIVE, SqlPlanError, plan_sql, relations_losing_rows  # noqa: E402

DOCUMENTATION = r"""
---
module: prisma_migration_plan
short_description: What each pending migration statement does to each table, from PostgreSQL's own parser
description:
  - Parses every statement of every pending C(migration.sql) with pglast (libpg_query, PostgreSQL's parser)
    and runs squawk-cli over the same files. Runs on the controller; never changes anything.
  - A statement the parser rejects fails the task with C(cannot verify migration X line N: ...).
options:
  migrations:
    description: The pending migrations in order, each C({name, file, sql}) (prisma_database_info's
      C(history.pending_sql)).
    type: list
    elements: dict
    required: true
  schema:
    description: The schema unqualified names resolve to (the URL's C(schema) parameter).
    type: str
    default: public
  server_version:
    description: The server's version (C(15.4)); squawk's C(--pg-version). Empty for squawk's default.
    type: str
    default: ""
  squawk_config:
    description: The app's own C(.squawk.toml) text, merged with the project's settings; null when it has none.
    type: str
  lint:
    description: Run squawk too.
    type: bool
    default: true
  relations:
    description: The target's live statistics (prisma_database_info's C(relations), keyed C(schema.name)); each
      blocking statement gets an estimate of how long it blocks the application from them. Empty for none.
    type: dict
    default: {}
  ddl_rates:
    description: Bytes of table per second for C(index_build), C(full_rewrite) and C(full_scan) (the inventory's
      C(ddl_rates)); overrides the calibration C(make bench-ddl) wrote (C(ddl_rates.json) beside this plugin).
    type: dict
  max_blocking_seconds:
    description: The budget. A blocking statement whose estimate (its high end) is longer, or cannot be
      estimated, is listed in C(over_budget).
    type: float
    default: 5
  rehearsal:
    description:
      - The rehearsal of these same migrations (what C(rehearse.yml) kept in C(report_dir/rehearsals/)). A blocking
        statement it measured is estimated from the measure (up to 1.5 times it), not from the rates.
    type: dict
"""

RETURN = r"""
statements:
  description: Every statement, in order (sql_plan's fields, with C(migration) and C(file)).
  type: list
relations:
  description: The existing relations the SQL touches, schema-qualified (the blocker check watches these).
  type: list
retry_safe:
  description: The migrations that leave nothing behind when they fail (one statement besides SET, not in a DO block,
    not CONCURRENTLY); a deploy may retry them after a lock timeout.
  type: list
destructive:
  description: The statements that can lose data, each C({file, line, kind, statement, tables, data_loss}).
    C(kind) says what is lost (C(all rows of public.orders), C(column x of public.t) ...).
  type: list
blocking:
  description: The statements that block the application's reads or writes for longer than a brief metadata lock,
    each C({file, line, statement, relations, cost, safe_form}).
  type: list
loses_rows:
  description: Schema-qualified relations the SQL drops or empties (the row-loss guard excuses exactly these).
  type: list
over_budget:
  description: The blocking statements estimated to block the application longer than I(max_blocking_seconds)
    (or for a time that cannot be estimated); the gate refuses them without C(allow_blocking=true).
  type: list
rates_source:
  description: Where the rates of the estimates came from (the inventory, the calibration, the defaults).
  type: str
lint:
  description: squawk's findings (migration, file, line, rule, level, message, help, link), C(squawk) its version
    and C(excluded_rules).
  type: dict
"""

_ARGS = frozenset(
    (
        "migrations",
        "schema",
        "server_version",
        "squawk_config",
        "lint",
        "relations",
        "ddl_rates",
        "max_blocking_seconds",
        "rehearsal",
    )
)
CALIBRATION = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ddl_rates.json")


def _lost(item: dict) -> str:
    """One loss, as the gate names it: ``all rows of public.orders``, ``column note of public.orders``."""
    what, relation, column = item.get("what") or "data", item.get("relation") or "", item.get("column")
    if column:
        return (
            f"{what} {column} of {relation}" if what in ("column", "type change") else f"{what} in {relation}.{column}"
        )
    if what in ("table", "schema", "sequence", "function", "enum values"):
        return f"{what} {relation}".rstrip()
    return f"{what} of {relation}" if relation else what


def _kind(statement: dict) -> str:
    if statement["data_loss"]:
        return ", ".join(dict.fromkeys(_lost(d) for d in statement["data_loss"]))
    return f"unreadable: {statement['unclassified']}"


def _parser_view(statements: list, finding: dict) -> str:
    """What the parser says of the statement a squawk finding is in (the last one starting at or before its
    line), so that the plan shows both readings side by side: ``blocking``, ``destructive``, both, or ``neither``."""
    here = [s for s in statements if s["migration"] == finding["migration"] and s["line"] <= finding["line"]]
    if not here:
        return "no statement"
    statement = here[-1]
    words = [w for w, on in (("destructive", statement["destructive"]), ("blocking", statement["blocking"])) if on]
    return " and ".join(words) or "neither blocking nor destructive"


def _evidence(entry: dict, relations: dict) -> str:
    """The live facts behind a data loss: the rows of each table it drops or empties."""
    parts = []
    for loss in entry["data_loss"]:
        live = relations.get(loss.get("relation") or "")
        if live and loss["what"] in ("table", "all rows", "all rows (CASCADE)", "rows", "column", "values set to NULL"):
            parts.append(f"{loss['relation']} holds ~{int(live.get('rows') or 0):,} rows")
    return "; ".join(dict.fromkeys(parts))


# Statements that change nothing a failed attempt could leave behind.
_SESSION_ONLY = frozenset({"VariableSetStmt", "VariableShowStmt"})


def retry_safe(migrations: list, statements: list) -> list:
    """The migrations a deploy may mark rolled back and run again after a lock timeout: one statement
    (besides SET/SHOW), not in a DO block and not CONCURRENTLY (a failed concurrent index build leaves an
    invalid index behind), so that when it fails nothing of it was applied, whatever the engine
    (adapter-pg and Prisma >= 7.4 commit a migration's statements one by one)."""
    safe = []
    for migration in migrations:
        own = [s for s in statements if s["migration"] == migration["name"] and s["kind"] not in _SESSION_ONLY]
        if (
            len(own) == 1
            and not own[0]["in_do_block"]
            and not any(r["lock"] == SHARE_UPDATE_EXCLUSIVE for r in own[0]["relations"])
        ):
            safe.append(migration["name"])
    return safe


def rehearsed(record, statement: dict) -> float | None:
    """Seconds the rehearsal of these migrations measured this statement blocking the application (the
    longest lock of a mode that blocks reads or writes on one of its relations, held while this
    statement ran), or None when the rehearsal did not see it (too brief to sample, or no rehearsal)."""
    if not record:
        return None
    names = {r["relation"] for r in statement.get("relations") or [] if r.get("blocks") not in (None, "", "nothing")}
    text = normalize_query(statement.get("statement"))[:40]
    seen = [
        float(lock["held_s"])
        for lock in (record.get("locks_observed") or {}).get("locks") or []
        if lock.get("blocks") != "nothing" and lock.get("relation") in names
        and any(s[:40] == text for s in lock.get("statements") or [])
    ]  # fmt: skip
    return max(seen) if seen else None


def _measured(entry: dict, seconds: float, record: dict) -> dict:
    """The estimate of a statement the rehearsal measured: the measure, with the same margin above it."""
    where = f"{record.get('host')}/{record.get('database')}"
    high = seconds * RANGE[1]
    what = entry["estimate"]["text"].split(" for ")[0]
    return {
        **entry["estimate"],
        "seconds": seconds,
        "low": seconds,
        "high": high,
        "text": f"{what} for ~{human_seconds(seconds)} (measured by the rehearsal of {record.get('rehearsed_at')} on"
        f" {where}; up to {human_seconds(high)} counted)",
        "source": f"the rehearsal of {record.get('rehearsed_at')} on {where}",
        "rate_estimate": entry["estimate"]["text"],
    }


def build_plan(migrations: list, schema: str = "public", server_version: str = "", squawk_config=None,
               lint: bool = True, relations=None, ddl_rates=None, max_blocking_seconds: float = 5,
               calibration: str = CALIBRATION, rehearsal=None) -> dict:  # fmt: skip
    """The plan of the pending migrations (see RETURN). Raises SqlPlanError or SqlLintError."""
    statements = []
    for migration in migrations:
        for statement in plan_sql(migration["sql"], migration["name"], schema or "public"):
            statements.append({"migration": migration["name"], "file": migration["file"], **statement})
    destructive = [
        {
            "file": s["file"],
            "line": s["line"],
            "kind": _kind(s),
            "statement": s["statement"],
            "tables": sorted({d["relation"] for d in s["data_loss"] if d.get("relation")}),
            "data_loss": s["data_loss"],
        }
        for s in statements
        if s["destructive"]
    ]
    for entry in destructive:
        entry["evidence"] = _evidence(entry, relations or {})
    rates, rates_source = load_rates(ddl_rates, calibration)
    blocking = []
    for s in statements:
        if s["blocking"]:
            entry = {k: s[k] for k in ("file", "line", "statement", "relations", "cost", "safe_form", "notes")}
            entry["estimate"] = estimate(s, relations or {}, rates, rates_source)
            measured = rehearsed(rehearsal, s)
            if measured is not None:
                entry["estimate"] = _measured(entry, measured, rehearsal)
            blocking.append(entry)
    over_budget = [
        b for b in blocking if b["estimate"]["high"] is None or b["estimate"]["high"] > float(max_blocking_seconds)
    ]
    loses_rows = relations_losing_rows(statements, partial=True)  # a DELETE ... WHERE lowers the count too
    findings = {"findings": [], "excluded_rules": [], "squawk": None}
    if lint and migrations:
        major = str(server_version or "").split(".")[0]
        findings = lint_migrations({m["name"]: m["sql"] for m in migrations}, major or None, squawk_config)
        files = {m["name"]: m["file"] for m in migrations}
        for finding in findings["findings"]:
            finding["file"] = files.get(finding["migration"], "")
            finding["parser"] = _parser_view(statements, finding)
    return {
        "statements": statements,
        "relations": sorted({r["relation"] for s in statements for r in s["relations"] if not r.get("new")}),
        "retry_safe": retry_safe(migrations, statements),
        "destructive": destructive,
        "blocking": blocking,
        "over_budget": over_budget,
        "rates_source": rates_source,
        "loses_rows": loses_rows,
        "lint": findings,
    }


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = _ARGS

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        migrations = args.get("migrations")
        if not isinstance(migrations, list) or not all(
            isinstance(m, dict) and {"name", "file", "sql"} <= set(m) for m in migrations
        ):
            raise AnsibleActionFail(
                "prisma_migration_plan: migrations must be a list of {name, file, sql} (prisma_database_info's"
                " history.pending_sql)"
            )
        try:
            budget = float(args.get("max_blocking_seconds", 5))
        except (TypeError, ValueError):
            budget = -1
        if budget < 0:
            raise AnsibleActionFail(
                f"max_blocking_seconds must be a number of seconds, 0 or more, not {args.get('max_blocking_seconds')!r}."
                " Nothing was changed."
            )
        try:
            plan = build_plan(
                migrations,
                str(args.get("schema") or "public"),
                str(args.get("server_version") or ""),
                args.get("squawk_config"),
                boolean(args.get("lint", True), strict=False),
                args.get("relations") or {},
                args.get("ddl_rates") or None,
                budget,
                rehearsal=args.get("rehearsal") if isinstance(args.get("rehearsal"), dict) else None,
            )
        except (SqlPlanError, SqlLintError, RateError) as exc:
            raise AnsibleActionFail(f"{exc}. Nothing was changed.") from None
        result.update(plan, changed=False)
        return result
