"""Both modules through ansible-playbook against the fixture app in a
throwaway cluster, in every state this machine can reach (issue #3)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from ansible_run import run_tasks
from prismaapp import MIGRATIONS, PrismaApp, offline_env

# Also on Prisma 6.19.3 (@pytest.mark.prisma6): every test whose assertions read what Prisma printed or did
# (the states, the error codes, the audit beside Prisma's list, the redaction of what Prisma echoes). The tests
# of the modules' own input checks and ordering: Prisma 7 only.

FAILING_SQL = 'CREATE TABLE "audit_log" (id int);\nSELECT 1/0;\n'


def status_task(app: PrismaApp, **extra) -> dict:
    args = {
        "project_dir": str(app.path),
        "database_url": "{{ lookup('env', 'TEST_DATABASE_URL') }}",
        "environment": offline_env(app.path),
        **extra,
    }
    return {"name": "status", "prisma_migrate_info": args, "ignore_errors": True}


def history_task(app: PrismaApp, **extra) -> dict:
    args = {
        "project_dir": str(app.path),
        "database_url": "{{ lookup('env', 'TEST_DATABASE_URL') }}",
        **extra,
    }
    return {"name": "history", "prisma_migration_history_info": args, "ignore_errors": True}


def run_both(tmp_path, app, url, **status_extra):
    run = run_tasks(tmp_path, [status_task(app, **status_extra), history_task(app)], env={"TEST_DATABASE_URL": url})
    return run, run["status"], run["history"]


def assert_no_secret(run, database):
    assert database.password not in run.stdout
    assert database.password not in run.stderr


@pytest.mark.prisma6
def test_pending_then_up_to_date(tmp_path, prisma_app, database):
    prisma_app.keep_only(3)
    assert prisma_app.prisma("migrate", "deploy", database_url=database.url()).rc == 0
    full = PrismaApp.copy_to(tmp_path / "full")
    run, status, history = run_both(tmp_path, full, database.url())
    assert status["state"] == "pending"
    assert status["pending"] == MIGRATIONS[3:]
    assert status["changed"] is False
    assert "failed" not in status or status["failed"] is False
    assert history["ok"] is True
    assert history["applied"] == MIGRATIONS[:3]
    assert history["pending"] == MIGRATIONS[3:]
    assert_no_secret(run, database)

    assert full.prisma("migrate", "deploy", database_url=database.url()).rc == 0
    run, status, history = run_both(tmp_path, full, database.url(), expect="up_to_date")
    assert status["state"] == "up_to_date"
    assert status["in_sync"] is True
    assert status["command_rc"] == 0
    assert history["ok"] is True
    assert history["pending"] == []
    assert history["applied"] == MIGRATIONS


def test_expect_fails_with_the_pending_names(tmp_path, prisma_app, database):
    run = run_tasks(tmp_path, [status_task(prisma_app, expect="up_to_date")], env={"TEST_DATABASE_URL": database.url()})
    status = run["status"]
    assert status["failed"] is True
    assert status["msg"].startswith(
        "expected migration state up_to_date, found pending: 5 migration(s) not yet applied"
    )
    assert MIGRATIONS[0] in status["msg"]
    assert "playbooks/migrate.yml" in status["msg"]


@pytest.mark.prisma6
def test_failed_migration(tmp_path, migrated):
    database, app = migrated
    app.add_migration("20240301090000_audit_log", FAILING_SQL)
    res = app.prisma("migrate", "deploy", database_url=database.url())
    assert res.rc == 1
    run, status, history = run_both(tmp_path, app, database.url())
    assert status["state"] == "failed"
    assert status["failed_migrations"] == ["20240301090000_audit_log"]
    assert history["ok"] is False
    assert history["failed_migrations"] == ["20240301090000_audit_log"]
    assert history["pending"] == []
    assert "rollback.yml" in history["msg"]


@pytest.mark.prisma6
def test_edited_applied_migration_is_flagged_by_the_audit_only(tmp_path, migrated):
    database, app = migrated
    sql = app.migrations_dir / MIGRATIONS[3] / "migration.sql"
    sql.write_text(sql.read_text().replace("products_name_idx", "products_name_idx2"))
    run, status, history = run_both(tmp_path, app, database.url())
    assert status["state"] == "up_to_date"  # Prisma cannot see it
    assert history["ok"] is False
    assert history["checksum_mismatch"] == [MIGRATIONS[3]]
    assert "edited locally" in history["msg"]


def test_deleted_applied_migration_is_flagged_by_the_audit_only(tmp_path, migrated):
    database, app = migrated
    app.remove_migration(MIGRATIONS[4])
    run, status, history = run_both(tmp_path, app, database.url())
    assert status["state"] == "up_to_date"  # Prisma cannot see it
    assert history["ok"] is False
    assert history["missing_locally"] == [MIGRATIONS[4]]
    assert history["checksum_mismatch"] == []


@pytest.mark.prisma6
def test_diverged_history(tmp_path, migrated):
    database, app = migrated
    app.remove_migration(MIGRATIONS[4])
    app.add_migration("20240305090000_add_producer_phone", 'ALTER TABLE "producers" ADD COLUMN "phone" TEXT;\n')
    run, status, history = run_both(tmp_path, app, database.url())
    assert status["state"] == "diverged"
    assert status["missing_locally"] == [MIGRATIONS[4]]
    assert status["pending"] == ["20240305090000_add_producer_phone"]
    assert status["last_common_migration"] == MIGRATIONS[3]
    assert history["missing_locally"] == [MIGRATIONS[4]]
    assert history["pending"] == ["20240305090000_add_producer_phone"]


@pytest.mark.prisma6
def test_rolled_back_row_counts_as_pending_again(tmp_path, migrated):
    """`migrate resolve --rolled-back` does not run offline: mark the row as Prisma would."""
    database, app = migrated
    database.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = %s", (MIGRATIONS[4],))
    run = run_tasks(tmp_path, [history_task(app)], env={"TEST_DATABASE_URL": database.url()})
    history = run["history"]
    assert history["rolled_back"] == [MIGRATIONS[4]]
    assert history["pending"] == [MIGRATIONS[4]]
    assert history["ok"] is True


@pytest.mark.prisma6
def test_not_managed_and_empty_database(tmp_path, prisma_app, database):
    for name in prisma_app.migration_names():
        prisma_app.remove_migration(name)
    run = run_tasks(
        tmp_path,
        [
            status_task(prisma_app),
            history_task(prisma_app),
            history_task(prisma_app, allow_unmanaged=True) | {"name": "h2"},
        ],
        env={"TEST_DATABASE_URL": database.url()},
    )
    assert run["status"]["state"] == "not_managed"
    assert run["status"]["local_migration_count"] == 0
    assert run["history"]["failed"] is True
    assert 'has no table "public"."_prisma_migrations"' in run["history"]["msg"]
    assert run["h2"]["managed"] is False
    assert run["h2"]["ok"] is True


@pytest.mark.parametrize(
    ("url_change", "code"),
    [("password", "P1000"), ("database", "P1003"), ("port", "P1001")],
)
@pytest.mark.prisma6
def test_connection_errors_are_state_error_with_a_code(tmp_path, prisma_app, database, pg_cluster, url_change, code):
    url = database.url()
    if url_change == "password":
        url = database.url(password="wrong-password-123")
    elif url_change == "database":
        url = url.replace(f"/{database.name}?", f"/{database.name}_nope?")
    else:
        url = url.replace(f":{pg_cluster.port}/", ":1/")
    run, status, history = run_both(tmp_path, prisma_app, url)
    assert status["state"] == "error"
    assert status["error_code"] == code
    assert "next: check the URL" in status["msg"]
    assert history["failed"] is True
    assert history["msg"].startswith('cannot read "public"."_prisma_migrations"')
    assert_no_secret(run, database)
    assert "wrong-password-123" not in run.stdout


def test_bad_inputs_fail_with_one_line(tmp_path, prisma_app, database):
    no_migrations = PrismaApp.copy_to(tmp_path / "nomig")

    shutil.rmtree(no_migrations.migrations_dir)
    slow = tmp_path / "slow-prisma"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    tasks = [
        {
            "name": "missing project",
            "prisma_migrate_info": {"project_dir": str(tmp_path / "nope")},
            "ignore_errors": True,
        },
        status_task(no_migrations) | {"name": "no migrations"},
        status_task(prisma_app, command="prisma-not-installed-here") | {"name": "not found"},
        status_task(prisma_app, command=str(slow), timeout=1) | {"name": "timeout"},
        history_task(prisma_app, database_url="mysql://u:p@h/db") | {"name": "bad url"},
        history_task(prisma_app, database_url="postgresql://u:p@h:99999/db") | {"name": "bad port"},
    ]
    run = run_tasks(tmp_path, tasks, env={"TEST_DATABASE_URL": database.url()})
    expected = {
        "missing project": "does not exist or is not a directory on this host",
        "no migrations": "no migrations folder at",
        "not found": "Prisma command 'prisma-not-installed-here' was not found in ",
        "timeout": "did not finish within 1 s",
        "bad url": "scheme is 'mysql', expected postgresql://",
        "bad port": "cannot be parsed",
    }
    for task, text in expected.items():
        result = run[task]
        assert result.get("failed") is True, (task, result)
        assert text in result["msg"], (task, result["msg"])
        assert "\n" not in result["msg"], task
        assert "Traceback" not in result.get("module_stderr", ""), task


@pytest.mark.prisma6
def test_password_is_redacted_even_when_the_command_prints_the_url(tmp_path, prisma_app, database):
    """Some Prisma errors (P1013) echo the URL; nothing returned may carry the password."""
    echo = tmp_path / "echo-prisma"
    echo.write_text(
        '#!/bin/sh\necho "Error: P1013: The provided database string is invalid: $DATABASE_URL" >&2\nexit 1\n'
    )
    echo.chmod(0o755)
    run = run_tasks(
        tmp_path,
        [status_task(prisma_app, command=str(echo)) | {"check_mode": True}],
        env={"TEST_DATABASE_URL": database.url()},
    )
    status = run["status"]
    assert status["state"] == "error"
    assert status["error_code"] == "P1013"
    assert "postgresql://app:********@127.0.0.1" in status["stderr"]
    assert_no_secret(run, database)


def test_status_runs_in_check_mode(tmp_path, prisma_app, database):
    run = run_tasks(
        tmp_path, [status_task(prisma_app) | {"check_mode": True}], env={"TEST_DATABASE_URL": database.url()}
    )
    assert run["status"]["state"] == "pending"
    assert run["status"]["changed"] is False
    assert database.query("SELECT count(*) FROM pg_tables WHERE tablename = '_prisma_migrations'") == [(0,)]


@pytest.mark.prisma6
def test_validate_runs_side_by_side_and_an_invalid_schema_fails(tmp_path, prisma_app, database):
    run = run_tasks(tmp_path, [status_task(prisma_app, validate=True)], env={"TEST_DATABASE_URL": database.url()})
    status = run["status"]
    assert status["state"] == "pending"
    assert status["validation"]["command_rc"] == 0
    assert status["validation"]["msg"].startswith("prisma validate succeeded")
    assert status["duration_s"] > 0

    schema = prisma_app.path / "prisma" / "schema.prisma"
    schema.write_text(schema.read_text() + "\nmodel Broken {\n  id Int @id\n  owner Nowhere\n}\n")
    run = run_tasks(tmp_path, [status_task(prisma_app, validate=True)], env={"TEST_DATABASE_URL": database.url()})
    status = run["status"]
    assert status["failed"] is True
    assert status["msg"].startswith('prisma validate failed (exit 1): Type "Nowhere" is neither a built-in type')
    assert "(prisma/schema.prisma:" in status["msg"]
    assert "schema is invalid" in status["msg"]
    assert "\n" not in status["msg"]


def deploy_task(app: PrismaApp, name: str, **extra) -> dict:
    args = {
        "project_dir": str(app.path),
        "subcommand": "migrate_deploy",
        "database_url": "{{ lookup('env', 'TEST_DATABASE_URL') }}",
        "environment": offline_env(app.path),
        **extra,
    }
    return {"name": name, "prisma_command": args, "ignore_errors": True}


@pytest.mark.prisma6
def test_deploy_refuses_what_the_gate_did_not_show(tmp_path, prisma_app, database):
    env = {"TEST_DATABASE_URL": database.url()}
    history = run_tasks(tmp_path, [history_task(prisma_app, allow_unmanaged=True)], env=env)["history"]
    confirmed = history["pending_checksums"]
    assert sorted(confirmed) == MIGRATIONS

    sql = prisma_app.migrations_dir / MIGRATIONS[4] / "migration.sql"
    original = sql.read_text()
    sql.write_text(original + "\nDROP TABLE producers;\n")  # edited after the operator confirmed
    prisma_app.add_migration("20240301090000_audit_log", 'CREATE TABLE "audit_log" (id int);\n')
    locks = tmp_path / "locks"
    run = run_tasks(
        tmp_path,
        [
            deploy_task(prisma_app, "edited", expect_pending=confirmed),
            deploy_task(prisma_app, "no lock", run_lock={"owner": "me run 1 localhost", "state_dir": str(locks)}),
        ],
        env=env,
    )
    edited = run["edited"]
    assert edited["failed"] is True
    assert edited["msg"].startswith("The pending migrations changed since the gate (now ")
    assert f"edited since: {MIGRATIONS[4]}" in edited["msg"]
    assert "20240301090000_audit_log" in edited["msg"]
    assert edited["msg"].endswith("Nothing was migrated.")
    assert edited["command_rc"] is None  # Prisma never ran
    assert run["no lock"]["failed"] is True
    assert "the run lock of me run 1 localhost is no longer held" in run["no lock"]["msg"]
    assert database.query("SELECT to_regclass('_prisma_migrations')") == [(None,)]

    sql.write_text(original)
    prisma_app.remove_migration("20240301090000_audit_log")
    run = run_tasks(tmp_path, [deploy_task(prisma_app, "as confirmed", expect_pending=confirmed)], env=env)
    assert run["as confirmed"].get("failed") is not True, run["as confirmed"]["msg"]
    assert run["as confirmed"]["deploy"]["applied"] == MIGRATIONS
    assert_no_secret(run, database)


def database_task(app: PrismaApp, url: str = "{{ lookup('env', 'TEST_DATABASE_URL') }}", **status) -> dict:
    args = {
        "database_url": url,
        "project_dir": str(app.path),
        "migrate_status": {"environment": offline_env(app.path), **status},
    }
    return {"name": "database", "prisma_database_info": args, "ignore_errors": True}


def prisma_processes(app: PrismaApp) -> list[str]:
    """Command lines of the processes still running in the app checkout."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd") == str(app.path):
                found.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


@pytest.mark.prisma6
def test_database_info_runs_migrate_status_and_validate_alongside_its_reads(tmp_path, prisma_app, database):
    env = {"TEST_DATABASE_URL": database.url()}
    prisma_app.keep_only(3)
    run = run_tasks(tmp_path, [database_task(prisma_app, validate=True)], env=env)
    info = run["database"]
    assert info.get("failed") is not True, info["msg"]
    assert info["database"] == database.name
    assert info["history"]["pending"] == MIGRATIONS[:3]
    status = info["migrate_status"]
    assert (status["state"], status["pending"]) == ("pending", MIGRATIONS[:3])
    assert status["msg"].endswith("next: apply them with playbooks/migrate.yml")
    assert status["duration_s"] > 0
    assert status["validation"]["command_rc"] == 0
    assert_no_secret(run, database)

    schema = prisma_app.path / "prisma" / "schema.prisma"
    schema.write_text(schema.read_text() + "\nmodel Broken {\n  id Int @id\n  owner Nowhere\n}\n")
    info = run_tasks(tmp_path, [database_task(prisma_app, validate=True)], env=env)["database"]
    assert info["failed"] is True
    assert info["msg"].startswith('prisma validate failed (exit 1): Type "Nowhere" is neither a built-in type')
    assert info["migrate_status"]["validation"]["command_rc"] == 1


def test_database_info_stops_prisma_when_the_database_cannot_be_read(tmp_path, prisma_app, database, pg_cluster):
    missing = database.url().replace(f"/{database.name}?", "/no_such_database?")
    assert missing != database.url()
    info = run_tasks(tmp_path, [database_task(prisma_app, url=missing, validate=True)])["database"]
    assert info["failed"] is True
    assert "no_such_database" in info["msg"]
    assert "does not exist" in info["msg"]
    assert "\n" not in info["msg"]
    assert prisma_processes(prisma_app) == []  # stopped, not left running
    assert "no_such_database" not in pg_cluster.psql("SELECT string_agg(datname, ',') FROM pg_database")


def test_generate_first_runs_generate_then_deploy_and_a_failed_generate_migrates_nothing(
    tmp_path, prisma_app, database
):
    env = {"TEST_DATABASE_URL": database.url()}
    schema = prisma_app.path / "prisma" / "schema.prisma"
    good = schema.read_text()
    schema.write_text(good + "\nmodel Broken {\n  id Int @id\n  owner Nowhere\n}\n")
    failed = run_tasks(tmp_path, [deploy_task(prisma_app, "deploy", generate_first=True)], env=env)["deploy"]
    assert failed["failed"] is True
    assert failed["msg"].startswith("prisma generate failed (exit 1): ")
    assert failed["msg"].endswith("Nothing was migrated.")
    assert failed["generate"]["command_rc"] == 1
    assert failed["deploy"] == {}  # never started
    assert database.query("SELECT to_regclass('_prisma_migrations')") == [(None,)]

    schema.write_text(good)
    missing = deploy_task(prisma_app, "missing", generate_first=True, command="prisma-not-installed-here")
    checked = {**deploy_task(prisma_app, "check mode", generate_first=True), "check_mode": True}
    run = run_tasks(tmp_path, [missing, checked], env=env)
    assert run["missing"]["failed"] is True
    assert "'prisma-not-installed-here' was not found" in run["missing"]["msg"]
    assert run["missing"]["msg"].endswith(". Nothing was migrated.")
    assert run["missing"]["deploy"] == {}  # so the next step says nothing was migrated
    assert run["check mode"]["skipped"] is True
    assert run["check mode"]["generate"]["msg"] == "check mode: prisma generate not run"
    assert database.query("SELECT to_regclass('_prisma_migrations')") == [(None,)]

    run = run_tasks(tmp_path, [deploy_task(prisma_app, "deploy", generate_first=True)], env=env)
    done = run["deploy"]
    assert done.get("failed") is not True, done["msg"]
    assert done["generate"]["msg"].startswith("prisma generate succeeded")
    assert "Generated Prisma Client" in done["generate"]["stdout"]
    assert done["deploy"]["applied"] == MIGRATIONS
    assert done["changed"] is True
    assert_no_secret(run, database)
