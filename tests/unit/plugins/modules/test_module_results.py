"""Every module, through ansible-playbook, on the paths that need no database
server: an empty database_url fails with one line naming the option (the URL
never comes from DATABASE_URL in the environment), and every path returns
exactly the keys its RETURN documents. The success paths against a real
database are in tests/integration/test_module_results.py."""

from __future__ import annotations

import pytest
from ansible_run import MODULES_DIR, assert_result_keys, run_tasks
from prisma_connection import DATABASE_URL_EMPTY, require_database_url

MODULES = sorted(p.stem for p in MODULES_DIR.glob("*.py"))
# prisma_pgbackrest runs on the database host and never connects with the URL
URL_MODULES = [m for m in MODULES if "connection_argument_spec" in (MODULES_DIR / f"{m}.py").read_text()]
PASSWORD = "unit-secret-pw-42"
UNREACHABLE = f"postgresql://app:{PASSWORD}@127.0.0.1:1/app?schema=public"  # nothing listens on port 1


def required_args(module: str, tmp) -> dict:
    """The options each module needs besides database_url."""
    return {
        "prisma_archive_info": {},
        "prisma_command": {"project_dir": str(tmp / "app"), "subcommand": "validate"},
        "prisma_database_info": {},
        "prisma_lock_info": {},
        "prisma_migrate_info": {"project_dir": str(tmp / "app")},
        "prisma_migration_history_info": {"project_dir": str(tmp / "app")},
        "prisma_pgbackrest": {"stanza": "main"},
        "prisma_restore": {"path": str(tmp / "not-a-dump")},
        "prisma_restore_point": {"dest_dir": str(tmp / "backups"), "run_id": "unit-1"},
        "prisma_run_lock": {"owner": "unit run 1", "state_dir": str(tmp / "locks")},
        "prisma_snapshot": {"dest_dir": str(tmp / "backups")},
        "prisma_snapshot_info": {"backup_dir": str(tmp / "backups")},
    }[module]


# (module, path) -> (extra options, task keywords, failed, text in msg)
PATHS = {
    ("prisma_archive_info", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "cannot reach the database server at 127.0.0.1:1"),
    ("prisma_archive_info", "negative timeout"): (
        {"database_url": UNREACHABLE, "archive_timeout": -1}, {}, True, "archive_timeout must be 0 or more seconds"),
    ("prisma_pgbackrest", "info fails"): (
        {"command": ["/bin/false"]}, {}, True, "pgbackrest info failed on this host (exit 1)"),
    ("prisma_pgbackrest", "info not JSON"): (
        {"command": ["/bin/echo"]}, {}, True, "pgbackrest info printed something that is not JSON"),
    ("prisma_pgbackrest", "restore in check mode"): (
        {"state": "restored", "restore_point": "prisma-1", "backup_set": "x", "timeline": 1,
         "stop_command": ["/bin/false"], "start_command": ["/bin/false"]}, {"check_mode": True}, False, ""),
    ("prisma_restore_point", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "cannot reach the database server at 127.0.0.1:1"),
    ("prisma_restore_point", "run id that cannot name a point"): (
        {"database_url": UNREACHABLE, "run_id": "a b"}, {}, True, "run_id 'a b' cannot name a restore point"),
    ("prisma_command", "lock_timeout not a duration"): (
        {"subcommand": "migrate_deploy", "database_url": UNREACHABLE, "lock_timeout": "5s; DROP"}, {}, True,
        "lock_timeout '5s; DROP' is not a PostgreSQL duration"),
    ("prisma_command", "check mode"): (
        {"subcommand": "migrate_deploy", "generate_first": True}, {"check_mode": True}, False,
        "check mode: prisma migrate deploy not run"),
    ("prisma_database_info", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "cannot reach the database server at 127.0.0.1:1"),
    ("prisma_lock_info", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "cannot reach the database server at 127.0.0.1:1"),
    ("prisma_lock_info", "negative wait"): (
        {"database_url": UNREACHABLE, "wait": -1}, {}, True, "wait must be 0 or more seconds, not -1"),
    ("prisma_migrate_info", "DATABASE_URL in environment"): (
        {"database_url": UNREACHABLE, "environment": {"DATABASE_URL": UNREACHABLE}}, {}, True,
        "environment must not carry DATABASE_URL"),
    ("prisma_migration_history_info", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, 'cannot read "public"."_prisma_migrations" in database app'),
    ("prisma_restore", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "cannot reach the database server at 127.0.0.1:1"),
    ("prisma_run_lock", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "could not take the run lock on database app"),
    ("prisma_run_lock", "released without holding it"): (
        {"state": "released"}, {}, False, "run lock was not held"),
    ("prisma_snapshot", "unreachable"): (
        {"database_url": UNREACHABLE}, {}, True, "cannot reach the database server at 127.0.0.1:1"),
    ("prisma_snapshot_info", "not a PostgreSQL URL"): (
        {"database_url": "mysql://app:x@127.0.0.1/app"}, {}, True, "scheme is 'mysql', expected postgresql://"),
}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One playbook: every module without database_url (while DATABASE_URL is set in the
    environment), and the server-less paths."""
    tmp = tmp_path_factory.mktemp("results")
    (tmp / "app" / "prisma" / "migrations" / "20240105090000_init").mkdir(parents=True)
    (tmp / "app" / "prisma" / "migrations" / "20240105090000_init" / "migration.sql").write_text("SELECT 1;\n")
    (tmp / "app" / "package.json").write_text("{}\n")
    (tmp / "not-a-dump").write_text("not a dump\n")
    tasks = []
    for module in URL_MODULES:
        tasks.append(
            {"name": f"{module} without database_url", module: required_args(module, tmp), "ignore_errors": True}
        )
    for (module, path), (extra, keywords, _failed, _text) in PATHS.items():
        args = required_args(module, tmp) | extra
        tasks.append({"name": f"{module} {path}", module: args, "ignore_errors": True, **keywords})
    # The URL never comes from the environment, whatever it holds.
    return run_tasks(tmp, tasks, env={"DATABASE_URL": UNREACHABLE})


@pytest.mark.parametrize("module", URL_MODULES)
def test_without_database_url_a_module_fails_with_one_line_naming_the_option(run, module):
    result = run[f"{module} without database_url"]
    assert result["msg"].startswith(DATABASE_URL_EMPTY), result["msg"]  # not DATABASE_URL from the environment
    assert_result_keys(module, result, failed=True)


@pytest.mark.parametrize("url", [None, "", "  ", 42])
def test_an_empty_or_missing_url_is_refused_before_anything_else(url):
    def fail(msg):
        raise RuntimeError(msg)

    with pytest.raises(RuntimeError, match="^database_url is empty: pass the Prisma PostgreSQL URL as database_url$"):
        require_database_url({"database_url": url}, fail)
    assert require_database_url({"database_url": UNREACHABLE}, fail) == UNREACHABLE


def test_every_module_has_a_server_less_path():
    assert {module for module, _path in PATHS} == set(MODULES)


@pytest.mark.parametrize(("module", "path"), list(PATHS), ids=[f"{m}-{p}" for m, p in PATHS])
def test_paths_without_a_server_return_the_documented_keys(run, module, path):
    _extra, _keywords, failed, text = PATHS[(module, path)]
    result = run[f"{module} {path}"]
    assert text in result["msg"], result["msg"]
    assert_result_keys(module, result, failed=failed)
    assert PASSWORD not in run.stdout
    assert PASSWORD not in run.stderr
