"""Every module returns exactly the keys its RETURN documents - on success
against a real database, and on a failure - through ansible-playbook (issue
15). RETURN is parsed with yaml from the module's source, so the doc and the
code cannot drift. Failures that need no server are in
tests/unit/plugins/modules/test_module_results.py."""

from __future__ import annotations

import math

from ansible_run import assert_result_keys, run_tasks
from prismaapp import MIGRATIONS, offline_env

URL = "{{ lookup('env', 'TEST_DATABASE_URL') }}"
TYPO_URL = "{{ lookup('env', 'TEST_TYPO_URL') }}"  # a database that does not exist


def env_for(database) -> dict:
    return {
        "TEST_DATABASE_URL": database.url(),
        "TEST_TYPO_URL": database.url().replace(f"/{database.name}?", f"/{database.name}_nope?"),
    }


def task(name: str, module: str, *, register: str | None = None, **args) -> dict:
    return {"name": name, module: args, "ignore_errors": True, **({"register": register} if register else {})}


def prisma_args(app) -> dict:
    """The options of a module that runs the Prisma CLI of the fixture app."""
    return {"project_dir": str(app.path), "database_url": URL, "environment": offline_env(app.path)}


def run(tmp_path, database, *tasks):
    result = run_tasks(tmp_path, list(tasks), env=env_for(database))
    assert database.password not in result.stdout
    return result


def test_prisma_migrate_info_result_keys(tmp_path, migrated):
    database, app = migrated
    common = prisma_args(app)
    out = run(
        tmp_path,
        database,
        task("success", "prisma_migrate_info", validate=True, **common),
        task("failure", "prisma_migrate_info", expect="pending", **common),
    )
    assert out["success"]["state"] == "up_to_date"
    assert_result_keys("prisma_migrate_info", out["success"], failed=False)
    assert out["failure"]["msg"].startswith("expected migration state pending, found up_to_date")
    assert_result_keys("prisma_migrate_info", out["failure"], failed=True)


def test_prisma_command_result_keys(tmp_path, migrated):
    database, app = migrated
    common = prisma_args(app)
    out = run(
        tmp_path,
        database,
        task("validate", "prisma_command", subcommand="validate", **common),
        task("deploy", "prisma_command", subcommand="migrate_deploy", **common),
        task(
            "refused", "prisma_command", subcommand="migrate_deploy", expect_pending={MIGRATIONS[0]: "0" * 64}, **common
        ),
    )
    assert out["validate"]["msg"].startswith("prisma validate succeeded")
    assert out["deploy"]["deploy"]["applied"] == []
    for name in ("validate", "deploy"):
        assert_result_keys("prisma_command", out[name], failed=False)
    assert out["refused"]["msg"].startswith("The pending migrations changed since the gate")
    assert out["refused"]["command_rc"] is None  # Prisma never ran
    assert_result_keys("prisma_command", out["refused"], failed=True)


def test_prisma_migration_history_info_result_keys(tmp_path, migrated):
    database, app = migrated
    out = run(
        tmp_path,
        database,
        task("success", "prisma_migration_history_info", project_dir=str(app.path), database_url=URL),
        task("failure", "prisma_migration_history_info", project_dir=str(app.path), database_url=TYPO_URL),
    )
    assert out["success"]["applied"] == MIGRATIONS
    assert_result_keys("prisma_migration_history_info", out["success"], failed=False)
    assert out["failure"]["msg"].startswith('cannot read "public"."_prisma_migrations" in database ')
    assert_result_keys("prisma_migration_history_info", out["failure"], failed=True)


def test_prisma_database_info_result_keys_and_the_room_for_a_snapshot(tmp_path, migrated):
    database, app = migrated
    backups = tmp_path / "backups"
    full = {
        "database_url": URL,
        "row_counts": True,
        "backup_dir": str(backups),
        "checks": [{"name": "one", "sql": "SELECT 1", "expect": 1}],
        "project_dir": str(app.path),
        "migrate_status": {"environment": offline_env(app.path)},
    }
    out = run(
        tmp_path,
        database,
        task("full", "prisma_database_info", **full),
        task("bare", "prisma_database_info", database_url=URL),
        task("no room", "prisma_database_info", database_url=URL, backup_dir=str(backups), min_free_ratio=1e12),
        task("failure", "prisma_database_info", database_url=TYPO_URL, project_dir=str(app.path)),
    )
    info = out["full"]
    assert info["history"]["applied"] == MIGRATIONS
    assert info["history"]["failed_migrations"] == []
    assert info["migrate_status"]["state"] == "up_to_date"
    assert info["checks"][0]["ok"] is True
    assert info["backup_dir_needed_bytes"] == math.ceil(info["size_bytes"] * 1.2)
    assert info["backup_dir_room"] is (info["backup_dir_free_bytes"] >= info["backup_dir_needed_bytes"])
    assert info["backup_dir_room"] is True
    bare = out["bare"]
    assert (bare["history"], bare["migrate_status"], bare["tables"], bare["checks"]) == ({}, {}, {}, [])
    assert bare["backup_dir_free_bytes"] is None
    assert bare["backup_dir_room"] is True  # no backup_dir: nothing to check
    assert out["no room"]["backup_dir_room"] is False
    assert out["no room"]["backup_dir_needed_bytes"] == math.ceil(out["no room"]["size_bytes"] * 10**12)
    for name in ("full", "bare", "no room"):
        assert_result_keys("prisma_database_info", out[name], failed=False)
    failure = out["failure"]
    assert f"database {database.name}_nope does not exist" in failure["msg"]
    assert failure["database"] == f"{database.name}_nope"  # what the URL says, known before connecting
    assert_result_keys("prisma_database_info", failure, failed=True)


def test_prisma_snapshot_result_keys(tmp_path, migrated):
    database, _app = migrated
    backups = str(tmp_path / "backups")
    out = run(
        tmp_path,
        database,
        task("success", "prisma_snapshot", database_url=URL, dest_dir=backups),
        task("no room", "prisma_snapshot", database_url=URL, dest_dir=backups, min_free_ratio=1e12),
    )
    assert out["success"]["manifest"]["applied_migrations"] == MIGRATIONS
    assert out["success"]["removed"] == []
    assert_result_keys("prisma_snapshot", out["success"], failed=False)
    assert out["no room"]["msg"].startswith(f"not enough space in {backups}")
    assert out["no room"]["path"] is None
    assert_result_keys("prisma_snapshot", out["no room"], failed=True)


def test_prisma_snapshot_info_result_keys(tmp_path, migrated):
    database, _app = migrated
    backups = str(tmp_path / "backups")
    out = run(
        tmp_path,
        database,
        task("snapshot", "prisma_snapshot", database_url=URL, dest_dir=backups, register="snap"),
        task("success", "prisma_snapshot_info", database_url=URL, backup_dir=backups),
        task("failure", "prisma_snapshot_info", database_url=URL, backup_dir=backups, exclude_target=True),
    )
    assert out["success"]["path"] == out["snapshot"]["path"]
    assert out["success"]["toc_entries"] > 0
    assert_result_keys("prisma_snapshot_info", out["success"], failed=False)
    assert out["failure"]["msg"].startswith(f"no snapshot of database {database.name}")
    assert_result_keys("prisma_snapshot_info", out["failure"], failed=True)


def test_prisma_restore_result_keys(tmp_path, migrated):
    database, _app = migrated
    backups = str(tmp_path / "backups")
    not_a_dump = tmp_path / "not-a-dump"
    not_a_dump.write_text("not a dump\n")
    out = run(
        tmp_path,
        database,
        task("snapshot", "prisma_snapshot", database_url=URL, dest_dir=backups, register="snap"),
        task("success", "prisma_restore", database_url=URL, path="{{ snap.path }}"),
        task("failure", "prisma_restore", database_url=URL, path=str(not_a_dump)),
    )
    assert out["success"]["changed"] is True
    assert out["success"]["duration_s"] > 0
    assert_result_keys("prisma_restore", out["success"], failed=False)
    assert out["failure"]["msg"].startswith(f"pg_restore --list cannot read {not_a_dump}")
    assert_result_keys("prisma_restore", out["failure"], failed=True)
    assert database.query("SELECT count(*) FROM _prisma_migrations") == [(len(MIGRATIONS),)]


def test_prisma_run_lock_result_keys(tmp_path, migrated):
    database, _app = migrated
    locks = str(tmp_path / "locks")
    out = run(
        tmp_path,
        database,
        task("acquired", "prisma_run_lock", database_url=URL, owner="run A", state_dir=locks),
        task("refused", "prisma_run_lock", database_url=URL, owner="run B", state_dir=locks),
        task("renewed", "prisma_run_lock", state="renewed", owner="run A", state_dir=locks),
        task("released", "prisma_run_lock", state="released", owner="run A", state_dir=locks),
    )
    assert out["acquired"]["holder_pid"] > 0
    for name in ("acquired", "renewed", "released"):
        assert_result_keys("prisma_run_lock", out[name], failed=False)
    assert out["refused"]["msg"].startswith(f"another run holds the migration lock on database {database.name}")
    assert [h["application_name"] for h in out["refused"]["holders"]] == ["prisma-run-lock run A"]
    assert_result_keys("prisma_run_lock", out["refused"], failed=True)
