"""The parsers over output captured from the fixture app (real Prisma 6.19,
WebAssembly engine, PostgreSQL 15). Re-capture with
tests/unit/data/prisma/capture.py."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from prisma_status import parse_migrate_deploy, parse_migrate_status

DATA = Path(__file__).resolve().parents[2] / "data" / "prisma"
ALL = ["20240105090000_init",
       "20240112090000_add_product_status",
       "20240120090000_backfill_product_slug",
       "20240201090000_add_product_name_index",
       "20240210090000_add_order_item_foreign_keys"]  # fmt: skip
BAD = "20240301090000_require_product_weight"


def load(command: str, case: str) -> tuple[str, int]:
    [path] = DATA.glob(f"real-migrate-{command}-{case}.rc*.txt")
    rc = int(re.search(r"\.rc(\d+)\.txt$", path.name).group(1))
    return path.read_text(), rc


STATUS_CASES = {
    "pending-all": {"state": "pending", "pending": ALL, "local_migration_count": 5},
    "pending-all-color": {"state": "pending", "pending": ALL, "local_migration_count": 5},
    "pending-one": {"state": "pending", "pending": ALL[4:], "local_migration_count": 5},
    "up-to-date": {"state": "up_to_date", "in_sync": True, "pending": [], "error_code": None},
    "failed": {"state": "failed", "failed": [BAD], "pending": [], "local_migration_count": 6},
    # Prisma is blind to these two (the history audit is not): it says up to date.
    "edited-after-apply": {"state": "up_to_date", "in_sync": True, "local_migration_count": 5},
    "missing-locally": {"state": "up_to_date", "in_sync": True, "local_migration_count": 4},
    "diverged": {
        "state": "diverged",
        "last_common_migration": ALL[3],
        "missing_locally": [ALL[4]],
        "pending": ["20240305090000_add_producer_phone"],
    },
    # The WebAssembly engine lists an unmanaged database's migrations as pending.
    "tables-without-history": {"state": "pending", "pending": ALL},
    "no-migrations-not-managed": {"state": "not_managed", "local_migration_count": 0},
    "auth-failed": {"state": "error", "error_code": "P1000", "local_migration_count": None},
    "database-missing": {"state": "error", "error_code": "P1003", "database": "app_missing"},
    "unreachable": {"state": "error", "error_code": "P1001"},
    "invalid-schema": {"state": "error", "error_code": "P1012", "database": None},
}


@pytest.mark.parametrize("case", sorted(STATUS_CASES))
def test_status_real_output(case):
    output, rc = load("status", case)
    facts = parse_migrate_status(output, rc)
    expected = {"database": "app", "schema": "public", "in_sync": False, **STATUS_CASES[case]}
    if case == "invalid-schema":
        expected["schema"] = None
    for key, value in expected.items():
        assert facts[key] == value, (case, key, facts)
    assert facts["in_sync"] is (facts["state"] == "up_to_date")
    if facts["state"] == "error":
        assert facts["error_message"]
        assert "\n" not in facts["error_message"]


def test_status_real_error_messages_are_the_first_error_line():
    assert parse_migrate_status(*load("status", "unreachable"))["error_message"] == (
        "Can't reach database server at `127.0.0.1:1`"
    )
    assert parse_migrate_status(*load("status", "database-missing"))["error_message"] == (
        "Database `app_missing` does not exist"
    )


def test_status_stdout_and_stderr_in_either_order():
    text, rc = load("status", "failed")
    head, sep, tail = text.partition("Prisma schema loaded")
    swapped = sep + tail + head
    assert parse_migrate_status(swapped, rc)["failed"] == [BAD]


DEPLOY_CASES = {
    "applied-all": {"result": "applied", "applied": ALL, "local_migration_count": 5},
    "nothing-pending": {"result": "nothing_pending", "applied": []},
    "edited-after-apply": {"result": "nothing_pending", "modified": []},
    "failed": {
        "result": "failed",
        "failed_migration": BAD,
        "error_code": "P3018",
        "database_error": "Null constraint failed",
    },
    "blocked-by-failed": {"result": "failed", "failed_migration": BAD, "error_code": "P3009", "database_error": None},
    "auth-failed": {"result": "error", "error_code": "P1000"},
    "database-missing": {"result": "error", "error_code": "P1003", "database_created": False},
}


@pytest.mark.parametrize("case", sorted(DEPLOY_CASES))
def test_deploy_real_output(case):
    output, rc = load("deploy", case)
    facts = parse_migrate_deploy(output, rc)
    for key, value in DEPLOY_CASES[case].items():
        assert facts[key] == value, (case, key, facts)
    assert facts["summary"]


def test_every_captured_file_has_an_expectation():
    cases = {p.name for p in DATA.glob("real-*.txt")}
    covered = {f"real-migrate-status-{c}" for c in STATUS_CASES} | {f"real-migrate-deploy-{c}" for c in DEPLOY_CASES}
    assert {re.sub(r"\.rc\d+\.txt$", "", c) for c in cases} == covered
