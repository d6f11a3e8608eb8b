"""The parsers over real Prisma 7.10.1 output (issue 17): every capture of tests/unit/data/prisma7/
(made by tests/unit/data/capture7.py from tests/fixtures/prisma7-app) parses to what expected.json
says, beside the 6.19 captures of test_prisma_status_real.py."""

from __future__ import annotations

import json
import re
from pathlib import Path

import prisma_status
import pytest

DATA = Path(__file__).resolve().parents[2] / "data" / "prisma7"
EXPECTED = json.loads((DATA / "expected.json").read_text())["captures"]
PARSED = {name: case for name, case in EXPECTED.items() if case["parser"]}


def test_every_capture_has_an_expectation_and_every_expectation_a_capture():
    captures = {p.name for p in DATA.glob("real-*.txt")}
    assert captures == set(EXPECTED)
    assert len(PARSED) >= 30  # status and deploy in every reachable state


@pytest.mark.parametrize("name", sorted(PARSED))
def test_a_prisma7_capture_parses_as_expected(name):
    case = PARSED[name]
    rc = int(re.search(r"\.rc(\d+)\.txt$", name).group(1))
    assert rc == case["rc"]
    parsed = getattr(prisma_status, case["parser"])((DATA / name).read_text(), rc)
    assert {key: parsed[key] for key in case["expected"]} == case["expected"]


def test_prisma7_prints_where_it_connects():
    """Prisma 7 prints the datasource's host and port: the preflight compares all four parts there."""
    text = (DATA / "real-migrate-status-pending-all.rc1.txt").read_text()
    datasource = prisma_status.parse_datasource(text)
    assert datasource["host"], datasource
    assert datasource["port"], datasource
    assert datasource["database"] == PARSED["real-migrate-status-pending-all.rc1.txt"]["expected"]["database"]


def test_prisma7_deploy_that_creates_a_database_is_flagged():
    [name] = [n for n in PARSED if n.startswith("real-migrate-deploy-database-missing")]
    parsed = prisma_status.parse_migrate_deploy((DATA / name).read_text(), 0)
    assert parsed["database_created"] is True
    assert "WARNING: deploy created database" in parsed["summary"]
