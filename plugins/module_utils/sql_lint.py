"""squawk, the field's PostgreSQL migration linter, over the pending migrations (issue 18, part 2).

Runs the ``squawk`` executable of the ``squawk-cli`` wheel (the Rust binary;
it works offline) on the controller, where the project's venv has it. The
migrations' SQL is written into a private temporary folder, one
``<migration>/migration.sql`` each, and linted with ``--reporter json``:

- lines come back 0-based: they are given 1-based, like the parser's;
- ``--pg-version`` is the server's, when known;
- the app's own ``.squawk.toml`` is honoured: its text (read from the
  checkout) is merged with the rules this project switches off, because a
  CLI ``--exclude`` would replace the file's ``excluded_rules`` instead of
  adding to them. Switched off (``PROJECT_EXCLUDED``): the two timeout rules
  (the playbook sets ``lock_timeout`` and ``statement_timeout`` on the
  migration session itself) and ``prefer-robust-stmts`` (Prisma writes no
  ``IF NOT EXISTS``, by design: it records a failed migration instead);
- exit 0 (nothing found) and 1 (findings) are results; anything else, or
  output that is not squawk's JSON, is ``SqlLintError`` in one line.

Pure Python, no Ansible import.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import tomllib
except ImportError:  # pragma: no cover - Python < 3.11 on a controller
    tomllib = None

PROJECT_EXCLUDED = ("require-lock-timeout", "require-statement-timeout", "prefer-robust-stmts")
RULE_LINK = "https://squawkhq.com/docs/{rule}"


class SqlLintError(Exception):
    """squawk could not lint, in one line with what to do."""


def squawk_executable() -> str:
    """The venv's squawk (beside this Python), else the one on PATH."""
    beside = os.path.join(os.path.dirname(sys.executable), "squawk")
    if os.access(beside, os.X_OK):
        return beside
    found = shutil.which("squawk")
    if not found:
        raise SqlLintError(
            "squawk is not installed on the controller: run 'make setup' (squawk-cli in requirements.txt)"
        )
    return found


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def merged_config(app_config: str | None, excluded=PROJECT_EXCLUDED) -> tuple[str, list]:
    """The app's .squawk.toml (text, or None) with ``excluded`` added to its excluded_rules: (toml text,
    the rules excluded in the end)."""
    settings: dict = {}
    if app_config and app_config.strip():
        if tomllib is None:
            raise SqlLintError("reading the app's .squawk.toml needs Python 3.11 on the controller")
        try:
            settings = tomllib.loads(app_config)
        except tomllib.TOMLDecodeError as exc:
            raise SqlLintError(f"the app's .squawk.toml is not valid TOML ({exc}): fix it or remove it") from None
    rules = list(settings.get("excluded_rules") or [])
    rules += [rule for rule in excluded if rule not in rules]
    settings["excluded_rules"] = rules
    lines = [f"{key} = {_toml_value(value)}" for key, value in settings.items() if not isinstance(value, dict)]
    for key, table in ((k, v) for k, v in settings.items() if isinstance(v, dict)):
        lines.append(f"[{key}]")
        lines += [f"{sub} = {_toml_value(value)}" for sub, value in table.items()]
    return "\n".join(lines) + "\n", rules


def lint_migrations(migrations: dict, pg_version: str | None = None, app_config: str | None = None,
                    excluded=PROJECT_EXCLUDED, squawk: str | None = None, timeout: int = 120) -> dict:  # fmt: skip
    """squawk's findings over ``migrations`` ({name: sql}): ``findings`` (migration, line 1-based, column,
    rule, level, message, help, link), ``excluded_rules`` and ``squawk`` (its version line)."""
    executable = squawk or squawk_executable()
    config, rules = merged_config(app_config, excluded)
    with tempfile.TemporaryDirectory(prefix="prisma-squawk-") as work:
        paths = {}
        for index, (name, sql) in enumerate(sorted(migrations.items())):
            folder = os.path.join(work, f"{index:05d}")  # a migration's name may hold anything: the folder is ours
            os.mkdir(folder)
            path = os.path.join(folder, "migration.sql")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(sql)
            paths[path] = name
        config_path = os.path.join(work, ".squawk.toml")
        with open(config_path, "w", encoding="utf-8") as fh:
            fh.write(config)
        argv = [executable, "--reporter", "json", "--config", config_path]
        if pg_version:
            argv += ["--pg-version", str(pg_version)]
        if not paths:
            return {"findings": [], "excluded_rules": rules, "squawk": _version(executable)}
        try:
            proc = subprocess.run(
                argv + sorted(paths), cwd=work, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SqlLintError(f"squawk did not run ({exc.__class__.__name__}: {exc}): check 'make setup'") from None
    if proc.returncode not in (0, 1):
        detail = " ".join((proc.stderr or proc.stdout).split())[:200]
        raise SqlLintError(f"squawk failed (exit {proc.returncode}): {detail}")
    try:
        raw = json.loads(proc.stdout or "[]")
    except ValueError:
        raise SqlLintError(f"squawk printed no JSON (exit {proc.returncode}): {' '.join(proc.stdout.split())[:200]}") from None  # fmt: skip
    findings = []
    for item in raw:
        rule = item.get("rule_name", "")
        findings.append(
            {
                "migration": paths.get(item.get("file"), item.get("file")),
                "line": int(item.get("line", 0)) + 1,
                "column": int(item.get("column", 0)) + 1,
                "rule": rule,
                "level": item.get("level", ""),
                "message": item.get("message", ""),
                "help": item.get("help") or "",
                "link": RULE_LINK.format(rule=rule) if rule and rule != "syntax-error" else "",
            }
        )
    findings.sort(key=lambda f: (f["migration"], f["line"], f["column"], f["rule"]))
    return {"findings": findings, "excluded_rules": rules, "squawk": _version(executable)}


def _version(executable: str) -> str:
    try:
        proc = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()
