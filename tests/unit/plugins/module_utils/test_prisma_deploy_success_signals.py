"""Issue 16 A: Prisma's explicit success signals win over a stray ``Error: ...`` line that something
else printed (a config loader, a package-manager hook). A deploy that succeeded must never be read as
an error: that reading led to restore advice that throws away every write since the snapshot."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prisma_status import parse_migrate_deploy

DATA = Path(__file__).resolve().parents[2] / "data" / "prisma"
STRAY = [
    "Error: Cannot find module 'dotenv/config' (ignored by the config loader)",
    'Error: npm warn Unknown user config "nodedir"',
    "Error:",
    "error: husky - .git can't be found",
]


def capture(case: str) -> tuple[str, int]:
    [path] = DATA.glob(f"real-migrate-deploy-{case}.rc*.txt")
    return path.read_text(), int(re.search(r"\.rc(\d+)\.txt$", path.name).group(1))


def with_stray(text: str, stray: str, where: str) -> str:
    lines = text.splitlines()
    at = {"first": 0, "middle": len(lines) // 2, "last": len(lines)}[where]
    return "\n".join(lines[:at] + [stray] + lines[at:])


@pytest.mark.parametrize("where", ["first", "middle", "last"])
@pytest.mark.parametrize("stray", STRAY)
@pytest.mark.parametrize(("case", "expected"), [("applied-all", "applied"), ("nothing-pending", "nothing_pending")])
def test_a_stray_error_line_does_not_turn_a_success_into_an_error(case, expected, stray, where):
    text, rc = capture(case)
    assert rc == 0
    clean = parse_migrate_deploy(text, 0)
    parsed = parse_migrate_deploy(with_stray(text, stray, where), 0)
    assert parsed["result"] == expected == clean["result"]
    assert parsed["applied"] == clean["applied"]
    assert parsed["error_message"] is None
    assert parsed["summary"] == clean["summary"]


@pytest.mark.parametrize(("case", "rc"), [("applied-all", 1), ("nothing-pending", 1)])
def test_a_non_zero_exit_is_still_an_error(case, rc):
    text, _ = capture(case)
    parsed = parse_migrate_deploy(with_stray(text, STRAY[0], "last"), rc)
    assert parsed["result"] == "error"
    assert parsed["error_message"]


def test_exit_0_and_the_applied_tree_win_even_over_an_error_code():
    text, _ = capture("applied-all")
    parsed = parse_migrate_deploy(with_stray(text, "Error: P1001", "last"), 0)
    assert parsed["result"] == "applied"
    assert parsed["applied"] == parse_migrate_deploy(text, 0)["applied"]
    assert parse_migrate_deploy(with_stray(text, "Error: P1001", "last"), 1)["result"] == "error"


@pytest.mark.parametrize("case", ["failed", "blocked-by-failed", "auth-failed", "database-missing"])
def test_real_failures_stay_failures(case):
    text, rc = capture(case)
    assert parse_migrate_deploy(text, rc)["result"] in ("failed", "error")
