"""The checkout's Prisma CLI version decides before the gate (issue 17): Prisma 8 (no `migrate deploy`)
and Prisma older than 5 are refused in one line naming the version and what to do, nothing changed;
a supported version is in the gate's plan and in the report."""

from __future__ import annotations

import json
import os

import pytest
from playbook_target import PHRASE, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS


def pretend_prisma(target, version: str) -> None:
    """Give the checkout its own node_modules whose prisma/package.json says ``version`` (every other
    package stays the installed fixture's)."""
    modules = target.app.path / "node_modules"
    installed = modules.resolve()
    modules.unlink()
    modules.mkdir()
    for entry in os.listdir(installed):
        if entry != "prisma":
            (modules / entry).symlink_to(installed / entry)
    (modules / "prisma").mkdir()
    (modules / "prisma" / "package.json").write_text(json.dumps({"name": "prisma", "version": version}))


@pytest.mark.parametrize(
    ("version", "says"),
    [
        ("8.0.0", "the checkout runs Prisma 8.0.0, which has no 'migrate deploy'"),
        ("4.16.2", "the checkout runs Prisma 4.16.2, older than this project supports"),
    ],
    ids=["prisma-8", "prisma-4"],
)
def test_an_unsupported_prisma_is_refused_before_the_gate(tmp_path, database, version, says):
    target = make_target(tmp_path, database)
    pretend_prisma(target, version)
    run = target.run({"confirm": PHRASE})
    assert run.rc != 0
    message = run.report["message"]
    assert says in message, message
    assert "\n" not in message
    assert "pin prisma@7" in message or "upgrade the app to prisma@7" in message
    assert run.report["failed_stage"].startswith("target | Read the database"), run.report["failed_stage"]
    assert "MIGRATION PLAN" not in run.stdout  # stopped before the gate
    assert run.report["next_step"].startswith("Nothing was changed.")
    assert target.applied() == MIGRATIONS[:2]
    assert target.snapshots() == []
    assert no_advisory_locks(target.db)
    assert_no_secret(run, target)


def test_the_supported_version_is_in_the_plan_and_the_report(tmp_path, database):
    target = make_target(tmp_path, database)
    run = target.run({"confirm": PHRASE})
    assert run.rc == 0, run.stdout[-3000:]
    installed = json.loads((target.app.path / "node_modules" / "prisma" / "package.json").read_text())["version"]
    assert f"prisma:     {installed} (the checkout" in run.stdout  # the gate's plan
    assert run.report["prisma_version"] == installed
    assert f"| Prisma | {installed} |" in (target.report_dir / f"{run.report['run_id']}-localhost.md").read_text()
