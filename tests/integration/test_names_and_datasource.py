"""Issue 16 B and C, and issue 17's Prisma 7 refusals, with real Prisma (7.10.1, and 6.19.3 where marked), a
real cluster and the real playbook: migration folders with names Prisma accepts but the old parsers cut
short, and a checkout whose Prisma reads another database than the URL the snapshot, the run lock and the
identity pins see (Prisma 6: .env, directUrl, a driver adapter; Prisma 7: its config file)."""

from __future__ import annotations

import pytest
from ansible_run import assert_result_keys, run_tasks
from playbook_target import PHRASE, Target, applied_migrations, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS, UNUSUAL_NAMES, PrismaApp, offline_env

UNUSUAL = UNUSUAL_NAMES


def add_unusual_migrations(app: PrismaApp) -> None:
    for i, name in enumerate(UNUSUAL):
        app.add_migration(name, f'CREATE TABLE "unusual_{i}" (id int);\n')


def database_state(db) -> dict:
    """What a person would look at to say a database was not touched: its tables and its migration rows."""
    tables = db.query("SELECT schemaname, tablename FROM pg_tables WHERE schemaname NOT IN ('pg_catalog',"
                      " 'information_schema') ORDER BY 1, 2")  # fmt: skip
    rows = db.query(
        "SELECT migration_name, checksum, finished_at, rolled_back_at FROM _prisma_migrations ORDER BY 1, 3"
    )
    products = db.query("SELECT count(*) FROM products")
    return {"tables": tables, "migrations": rows, "products": products}


def assert_stopped_before_the_gate(run, target: Target, before: list[str]):
    assert run.rc != 0, run.stdout[-3000:]
    report = run.report
    assert report["result"] == "failed"
    assert "confirm_gate" not in report["stages"], report["stages"]  # the gate was never reached
    assert report["next_step"].startswith("Nothing was changed."), report["next_step"]
    assert target.applied() == before
    assert target.snapshots() == []
    assert no_advisory_locks(target.db)
    assert "\n" not in report["message"]
    assert "Traceback" not in run.stdout + run.stderr
    assert_no_secret(run, target)


# --- B: unusual names, end to end --------------------------------------------------------------------------


@pytest.mark.prisma6
def test_unusual_names_the_gate_lists_what_the_audit_finds_and_the_deploy_applies(tmp_path, database):
    target = make_target(tmp_path, database)
    add_unusual_migrations(target.app)
    expected = sorted(MIGRATIONS[2:] + UNUSUAL)

    # The module the preflight runs: Prisma's list, the audit's and the cross-check.
    info = run_tasks(
        tmp_path,
        [
            {
                "name": "read",
                "prisma_database_info": {
                    "database_url": "{{ lookup('env', 'TEST_DATABASE_URL') }}",  # off the playbook's text
                    "project_dir": str(target.app.path),
                    "migrate_status": {"environment": offline_env(target.app.path)},
                },
                "ignore_errors": True,
            }
        ],
        env={"TEST_DATABASE_URL": database.url()},
    )["read"]
    assert_result_keys("prisma_database_info", info, failed=False)
    assert info["migrate_status"]["state"] == "pending"
    assert info["migrate_status"]["pending"] == expected  # all of them, each as it is (spaces kept)
    assert info["history"]["pending"] == expected
    assert info["pending_check"] == {
        "ok": True,
        "compared": True,
        "only_in_prisma": [],
        "only_in_audit": [],
        "msg": f"prisma migrate status and the history audit in database {database.name} agree: {len(expected)} pending",
    }
    check = info["datasource_check"]
    assert check["ok"] is True
    if target.app.major == 7:  # Prisma 7 prints where it connects
        assert check["compared"] == ["database", "schema", "host", "port"]
    else:  # Prisma 6 with a driver adapter prints no host:port
        assert check["compared"] == ["database", "schema"]
        assert check["not_compared"] == ["host", "port"]
        assert check["prisma"]["adapter"] == "@prisma/adapter-pg"
        assert "driver adapter" in check["note"]

    # The playbook: the gate's list, the deploy's applied list and the database agree, name for name.
    run = target.run({"confirm": PHRASE})
    assert run.rc == 0, run.stdout[-4000:]
    report = run.report
    assert report["result"] == "migrated"
    assert report["pending_before"] == expected
    assert report["applied"] == expected
    assert target.applied() == sorted(MIGRATIONS + UNUSUAL)
    for i in range(len(UNUSUAL)):
        assert database.query(f"SELECT to_regclass('public.unusual_{i}') IS NOT NULL") == [(True,)]
    assert_no_secret(run, target)


# --- C: Prisma pointed at another database -----------------------------------------------------------------


def point_prisma_at(app: PrismaApp, other_url: str, *, direct_url_in_schema: bool) -> None:
    """The checkout's own files send Prisma elsewhere, as a real app's can: prisma.config.ts loads .env
    (Prisma's documented 'import "dotenv/config"') and its adapter prefers DIRECT_URL; with
    ``direct_url_in_schema`` schema.prisma also says directUrl = env("DIRECT_URL")."""
    config = app.path / "prisma.config.ts"
    text = config.read_text()
    assert "const url = process.env.DATABASE_URL" in text
    config.write_text(
        "import 'dotenv/config'\n"
        + text.replace("const url = process.env.DATABASE_URL", "const url = process.env.DIRECT_URL ?? process.env.DATABASE_URL")
    )  # fmt: skip
    (app.path / ".env").write_text(f"DIRECT_URL={other_url}\n")
    if direct_url_in_schema:
        schema = app.path / "prisma" / "schema.prisma"
        text = schema.read_text()
        schema.write_text(text.replace('url      = env("DATABASE_URL")', 'url       = env("DATABASE_URL")\n  directUrl = env("DIRECT_URL")'))  # fmt: skip


def assert_refused_for_another_database(run, target: Target, other, other_before: dict) -> str:
    """The run stopped before the gate naming both databases, and the other one was not touched either."""
    assert_stopped_before_the_gate(run, target, MIGRATIONS[:2])
    message = run.report["message"]
    assert f'reads database "{other.name}", schema "public"' in message, message
    assert f'names database "{target.db.name}", schema "public" at 127.0.0.1:{other.cluster.port}' in message
    assert "(differs: database)" in message
    assert message.endswith("Nothing was changed.")
    assert database_state(other) == other_before
    assert no_advisory_locks(other)
    return message


def another_database_at(tmp_path, pg_cluster, at: int):
    other = pg_cluster.create_database()
    old = PrismaApp.copy_to(tmp_path / "other-old")
    old.keep_only(at)
    assert old.prisma("migrate", "deploy", database_url=other.url()).rc == 0
    other.execute("INSERT INTO producers (name, email, region) VALUES ('Other', 'other@example.gr', 'Rhodes')")
    other.execute("INSERT INTO products (producer_id, name, price_cents) VALUES (1, 'Other Oil', 900)")
    return other


@pytest.mark.prisma6_only  # schema.prisma's directUrl and the adapter in prisma.config.ts exist only there
def test_a_checkout_that_points_prisma_at_another_database_stops_before_the_gate(tmp_path, database, pg_cluster):
    target = make_target(tmp_path, database)
    other = another_database_at(tmp_path, pg_cluster, at=2)  # the same state: only the datasource line tells
    point_prisma_at(target.app, other.url(), direct_url_in_schema=True)
    other_before = database_state(other)
    try:
        message = assert_refused_for_another_database(target.run({"confirm": PHRASE}), target, other, other_before)
        assert "directUrl" in message
        assert ".env" in message
        assert applied_migrations(other) == MIGRATIONS[:2]
    finally:
        pg_cluster.drop_database(other.name)


@pytest.mark.prisma6_only  # Prisma 7 has no driver adapter in its config; it prints where it connects
def test_an_adapter_reading_another_database_is_caught_by_the_pending_list(tmp_path, database, pg_cluster):
    """Prisma 6 prints the database of schema.prisma's url even when the adapter connects elsewhere, so the
    datasource line agrees; the pending list Prisma read from the other database does not match the audit of
    this one, and the run stops before the gate with both lists."""
    target = make_target(tmp_path, database)
    other = pg_cluster.create_database()  # empty: Prisma lists all five as pending
    point_prisma_at(target.app, other.url(), direct_url_in_schema=False)
    try:
        run = target.run({"confirm": PHRASE})
        assert_stopped_before_the_gate(run, target, MIGRATIONS[:2])
        message = run.report["message"]
        assert "prisma migrate status lists 5 pending migration(s)" in message, message
        assert f"audit of _prisma_migrations in database {database.name}" in message
        assert f'only in Prisma\'s list: "{MIGRATIONS[0]}", "{MIGRATIONS[1]}"; only in the audit: none' in message
        assert "check that Prisma reads this database" in message
        assert other.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]
    finally:
        pg_cluster.drop_database(other.name)


@pytest.mark.prisma6_only  # Prisma 7.10.1 (its engine 8.1) lists a rolled-back migration as pending
def test_a_rolled_back_migration_prisma_does_not_list_stops_before_the_gate(tmp_path, database):
    """Prisma 6.19's WebAssembly engine's migrate status says "up to date" when a migration is marked rolled
    back, while migrate deploy applies it again: the gate would show nothing and the deploy would run it."""
    target = make_target(tmp_path, database)
    assert target.app.prisma("migrate", "deploy", database_url=database.url()).rc == 0
    database.execute("UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = %s", (MIGRATIONS[4],))
    run = target.run({"confirm": PHRASE})
    assert_stopped_before_the_gate(run, target, MIGRATIONS[:4])
    message = run.report["message"]
    assert "prisma migrate status lists 0 pending migration(s) (none)" in message, message
    assert f'only in the audit: "{MIGRATIONS[4]}"' in message
    assert "marked rolled back" in message


# --- C with Prisma 7: it prints at "HOST:PORT", so the host and the port are compared too ------------------


def test_prisma7_a_different_host_alone_stops_before_the_gate(tmp_path, database, pg_cluster):
    """Prisma 7 prints where it connects: all four parts are compared. The same database reached as localhost
    instead of 127.0.0.1 is refused - they are different hosts to this check (they can reach different
    servers, and a different spelling means Prisma was given another URL than the playbook)."""
    target = make_target(tmp_path, database)
    app7 = target.app
    assert app7.major == 7
    info = run_tasks(
        tmp_path,
        [
            {
                "name": "read",
                "prisma_database_info": {
                    "database_url": "{{ lookup('env', 'TEST_DATABASE_URL') }}",
                    "project_dir": str(app7.path),
                    "migrate_status": {"environment": offline_env(app7.path)},
                },
                "ignore_errors": True,
            }
        ],
        env={"TEST_DATABASE_URL": database.url()},
    )["read"]
    assert_result_keys("prisma_database_info", info, failed=False)
    check = info["datasource_check"]
    assert check["ok"] is True, check
    assert check["compared"] == ["database", "schema", "host", "port"]
    assert check["not_compared"] == []
    assert check["prisma"]["host"] == "127.0.0.1"
    assert check["prisma"]["port"] == pg_cluster.port
    assert info["pending_check"]["ok"] is True
    assert info["migrate_status"]["pending"] == MIGRATIONS[2:]
    assert info["prisma_version"]["config_file"] == str(app7.path / "prisma.config.ts")

    config = app7.path / "prisma.config.ts"
    assert "url: env('DATABASE_URL')" in config.read_text()
    config.write_text(
        "import 'dotenv/config'\n"
        + config.read_text().replace("url: env('DATABASE_URL')", "url: process.env.DIRECT_URL ?? env('DATABASE_URL')")
    )
    (app7.path / ".env").write_text(f"DIRECT_URL={database.url().replace('@127.0.0.1:', '@localhost:')}\n")
    run = target.run({"confirm": PHRASE})
    assert_stopped_before_the_gate(run, target, MIGRATIONS[:2])
    message = run.report["message"]
    assert f'reads database "{database.name}", schema "public" at localhost:{pg_cluster.port}' in message, message
    assert f'names database "{database.name}", schema "public" at 127.0.0.1:{pg_cluster.port}' in message
    assert "(differs: host)" in message


def read_url_from(app: PrismaApp, variable: str) -> None:
    """The checkout's prisma.config.ts takes the datasource URL from ``variable``, not DATABASE_URL."""
    config = app.path / "prisma.config.ts"
    text = config.read_text()
    assert "url: env('DATABASE_URL')" in text
    config.write_text(text.replace("url: env('DATABASE_URL')", f"url: env('{variable}')"))


def test_prisma7_a_config_reading_another_variable_stops_before_the_gate(tmp_path, database, pg_cluster, monkeypatch):
    """The app's prisma.config.ts reads MIGRATE_DATABASE_URL, which the app host's environment sets to another
    database (same history, so only the datasource line tells): stopped before the gate, neither touched.
    Unset, Prisma 7 cannot load its config: stopped before the gate too, saying which variable."""
    target = make_target(tmp_path, database)
    assert target.app.major == 7
    other = another_database_at(tmp_path, pg_cluster, at=2)
    read_url_from(target.app, "MIGRATE_DATABASE_URL")
    other_before = database_state(other)
    try:
        monkeypatch.setenv("MIGRATE_DATABASE_URL", other.url())
        message = assert_refused_for_another_database(target.run({"confirm": PHRASE}), target, other, other_before)
        assert f'reads database "{other.name}", schema "public" at 127.0.0.1:{pg_cluster.port}' in message

        monkeypatch.delenv("MIGRATE_DATABASE_URL")
        run = target.run({"confirm": PHRASE})
        assert_stopped_before_the_gate(run, target, MIGRATIONS[:2])
        message = run.report["message"]
        assert "MIGRATE_DATABASE_URL" in message, message
        assert database_state(other) == other_before
    finally:
        pg_cluster.drop_database(other.name)


def test_prisma7_a_checkout_without_a_config_file_stops_before_prisma_runs(tmp_path, database):
    """Prisma 7 takes the datasource URL only from its config file: without one it cannot read the playbook's
    URL. Refused before the gate, in one line saying what to add."""
    target = make_target(tmp_path, database)
    (target.app.path / "prisma.config.ts").unlink()
    run = target.run({"confirm": PHRASE})
    assert_stopped_before_the_gate(run, target, MIGRATIONS[:2])
    message = run.report["message"]
    assert f"the checkout runs Prisma {target.app.version} and has no prisma.config.ts" in message, message
    assert "datasource: { url: env('DATABASE_URL') }" in message
    assert run.report["failed_stage"].startswith("target | Read the database"), run.report["failed_stage"]
