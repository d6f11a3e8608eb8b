"""The preflight's decision on issue 16 B and C, without a server: the real assert tasks of
roles/preflight (read from their files) run through ansible-playbook on what prisma_database_info would
return - built with the real parsers and the real audit - and stop with one line ending "Nothing was
changed." when Prisma's pending list and the audit disagree, or when Prisma reads another database. Both
checks sit in the preflight, which every playbook imports before the gate."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from ansible_run import run_tasks
from prisma_history import audit, compare_pending
from prisma_status import datasource_check, parse_datasource, parse_migrate_status
from prisma_url import parse_database_url

ROOT = Path(__file__).resolve().parents[4]
TASKS = ROOT / "roles" / "preflight" / "tasks"
PASSWORD = "Pw-unit-7Qx9"
URL = parse_database_url(f"postgresql://app:{PASSWORD}@127.0.0.1:5432/shop?schema=public")
DS_LINE = 'Datasource "db": PostgreSQL database "{db}", schema "public" at "127.0.0.1:5432"\n\n'
NAMES = ["20240101000000_init", "20240102000000_add space", "20240103000000_c++", "20240104000000_café 🚀"]


def role_task(file: str, name: str) -> dict:
    """The task named ``name`` in roles/preflight/tasks/``file``, as the role runs it."""
    for task in yaml.safe_load((TASKS / file).read_text()):
        if task["name"] == name:
            return task
    raise AssertionError(f"no task {name!r} in {file}")


PENDING_ASSERT = ("migrations.yml", "migrations | Assert Prisma's pending list is the one the history audit finds")
DATASOURCE_ASSERT = (
    "target.yml",
    "target | Assert Prisma migrates the database the snapshot, the lock and the pins see",
)


def target_facts(printed_pending: list[str], local: list[str], rows: list[dict], db: str = "shop") -> dict:
    """What prisma_database_info returns for these facts (the keys the asserts read)."""
    output = DS_LINE.format(db=db)
    if printed_pending:
        output += "Following migrations have not yet been applied:\n" + "\n".join(printed_pending) + "\n\nTo apply\n"
    else:
        output += "Database schema is up to date!\n"
    status = parse_migrate_status(output, 1 if printed_pending else 0)
    history = audit(rows, dict.fromkeys(local, "c"))
    return {
        "database": URL["database"],
        "migrate_status": status,
        "history": history,
        "datasource_check": datasource_check(parse_datasource(output), URL),
        "pending_check": compare_pending(status, history, URL["database"]),
    }


def run_check(tmp_path, which, facts):
    task = role_task(*which)
    out = run_tasks(tmp_path, [{"name": "fake", "ansible.builtin.set_fact": {"__preflight_target": facts}}, task])
    assert PASSWORD not in out.stdout
    return out[task["name"]]


def applied(name):
    return {"name": name, "checksum": "c", "finished_at": "2024-01-01", "rolled_back_at": None, "has_logs": False}


def test_the_checks_sit_in_the_preflight_before_the_gate():
    main = yaml.safe_load((TASKS / "main.yml").read_text())[0]["block"]
    assert [t["ansible.builtin.import_tasks"] for t in main[:3]] == ["inputs.yml", "target.yml", "migrations.yml"]
    migrate = (ROOT / "playbooks" / "migrate.yml").read_text()
    assert migrate.index("name: preflight") < migrate.index("name: confirm_gate")
    for which in (PENDING_ASSERT, DATASOURCE_ASSERT):
        task = role_task(*which)
        assert task["ansible.builtin.assert"]["fail_msg"].endswith("Nothing was changed.")


@pytest.mark.parametrize(
    ("printed", "local", "rows", "ok"),
    [
        (NAMES, NAMES, [], True),
        (NAMES[2:], NAMES, [applied(n) for n in NAMES[:2]], True),
        ([], NAMES, [applied(n) for n in NAMES], True),
        # the list cut short at an unusual name: the gate would show 1, the deploy apply 4
        (NAMES[:1], NAMES, [], False),
        # Prisma says up to date, the audit finds a migration marked rolled back (applied again by deploy)
        ([], NAMES, [applied(n) for n in NAMES[:3]] + [{**applied(NAMES[3]), "rolled_back_at": "2024-01-02"}], False),
        # Prisma lists a folder the audit does not count (no migration.sql)
        ([*NAMES, "20240105000000_no sql"], NAMES, [], False),
    ],
    ids=["all-pending", "two-pending", "up-to-date", "cut-short", "rolled-back", "folder-without-sql"],
)
def test_pending_list_against_the_audit(tmp_path, printed, local, rows, ok):
    facts = target_facts(printed, local, rows)
    result = run_check(tmp_path, PENDING_ASSERT, facts)
    assert bool(result.get("failed")) is (not ok), result
    if not ok:
        msg = result["msg"]
        assert msg == facts["pending_check"]["msg"] + ". Nothing was changed."
        assert "\n" not in msg
        assert f"prisma migrate status lists {len(printed)} pending migration(s)" in msg
        assert "against the checkout's migration folders finds" in msg


@pytest.mark.parametrize(("db", "ok"), [("shop", True), ("shop_staging", False)])
def test_datasource_against_the_url(tmp_path, db, ok):
    facts = target_facts(NAMES, NAMES, [], db=db)
    result = run_check(tmp_path, DATASOURCE_ASSERT, facts)
    assert bool(result.get("failed")) is (not ok), result
    if not ok:
        assert result["msg"] == (
            'prisma migrate status reads database "shop_staging", schema "public" at 127.0.0.1:5432, but the URL the'
            ' snapshot, the run lock and the identity pins use names database "shop", schema "public" at'
            " 127.0.0.1:5432 (differs: database): make Prisma use the URL the playbook is given: look for directUrl in"
            " schema.prisma, a prisma.config.ts that reads another variable (DIRECT_URL ...), a .env in the checkout,"
            " and prisma_env. Nothing was changed."
        )
