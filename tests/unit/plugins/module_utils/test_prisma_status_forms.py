"""The parsers over every output form the issue lists, including the
classic-engine (native) forms this machine cannot produce: those are written
from the templates in Prisma's MigrateStatus.ts / MigrateDeploy.ts and its
user-facing error messages."""

from __future__ import annotations

import pytest
from prisma_status import clean_lines, looks_like_json, parse_migrate_deploy, parse_migrate_status

PG_DS = 'Datasource "db": PostgreSQL database "shop", schema "public" at "db.internal:5432"'

CLASSIC_PENDING = f"""Environment variables loaded from .env
Prisma schema loaded from prisma/schema.prisma
{PG_DS}

3 migrations found in prisma/migrations

Following migrations have not yet been applied:
0_init
1_add_orders
20240301090000_add_index

To apply migrations in development run prisma migrate dev.
To apply migrations in production run prisma migrate deploy.
"""

CLASSIC_UP_TO_DATE = f"""Prisma schema loaded from prisma/schema.prisma
{PG_DS}

3 migrations found in prisma/migrations


Database schema is up to date!
"""

# 4.x printed extra blank lines between the header and the names.
CLASSIC_FAILED_4X = f"""Prisma schema loaded from prisma/schema.prisma
{PG_DS}

2 migrations found in prisma/migrations


Following migration have failed:

20240301090000_require_weight


During development if the failed migration(s) have not been deployed to a production database you can then fix the migration(s) and run prisma migrate dev.

The failed migration(s) can be marked as rolled back or applied:

- If you rolled back the migration(s) manually:
prisma migrate resolve --rolled-back "20240301090000_require_weight"
"""

CLASSIC_DIVERGED = f"""{PG_DS}

4 migrations found in prisma/migrations

Your local migration history and the migrations table from your database are different:

The last common migration is: 20240201090000_add_index

The migrations have not yet been applied:
20240305090000_a
20240306090000_b

The migrations from the database are not found locally in prisma/migrations:
20240210090000_hotfix
20240211090000_hotfix2
"""

CLASSIC_NOT_MANAGED_BASELINE = f"""{PG_DS}

3 migrations found in prisma/migrations

The current database is not managed by Prisma Migrate.

If you want to keep the current database structure and data and create new migrations, baseline this database with the migration "0_init":
prisma migrate resolve --applied "0_init"

Read more about how to baseline an existing production database:
https://pris.ly/d/migrate-baseline
"""

CLASSIC_NOT_MANAGED_PLAIN = f"""{PG_DS}

No migration found in prisma/migrations

The current database is not managed by Prisma Migrate.
        
Read more about how to baseline an existing production database:
https://pris.ly/d/migrate-baseline
"""

# Histories with nothing in common: Prisma prints "null" and may print empty lists.
DIVERGED_NO_COMMON = """4 migrations found in prisma/migrations
Your local migration history and the migrations table from your database are different:

The last common migration is: null

The migration have not yet been applied:
0_init

The migrations from the database are not found locally in prisma/migrations:

"""

P1003_OLD = f"""{PG_DS}
Error: P1003: Database `shop` does not exist on the database server at `db.internal:5432`.
"""

P1001_OLD = f"""Prisma schema loaded from prisma/schema.prisma
{PG_DS}

Error: P1001: Can't reach database server at `db.internal`:`5432`

Please make sure your database server is running at `db.internal`:`5432`.
"""

P1001_NEW = P1001_OLD.replace("`db.internal`:`5432`", "`db.internal:5432`")

P1000 = f"""{PG_DS}

Error: P1000: Authentication failed against database server at `db.internal`, the provided database credentials for `app` are not valid.

Please make sure to provide valid database credentials for the database server at `db.internal`.
"""

P1003 = f"""{PG_DS}

Error: P1003: Database `shop` does not exist on the database server at `db.internal:5432`.
"""

P1012 = """Environment variables loaded from .env
Prisma schema loaded from prisma/schema.prisma
Error: Prisma schema validation - (get-config wasm)
Error code: P1012
error: Environment variable not found: DATABASE_URL.
  -->  prisma/schema.prisma:10
   |
 9 |   provider = "postgresql"
10 |   url      = env("DATABASE_URL")
   |

Validation Error Count: 1
[Context: getConfig]

Prisma CLI Version : 5.22.0
"""

PRISMA7_PENDING = """Loaded Prisma config from prisma.config.ts.

Prisma schema loaded from prisma/schema.prisma.
Datasource "db": PostgreSQL database "shop", schema "public" at "db.internal:5432"

1 migration found in prisma/migrations
Following migration have not yet been applied:
20240301090000_add_index

To apply migrations in development run prisma migrate dev.
To apply migrations in production run prisma migrate deploy.
"""

PNPM_WRAPPED = f"""
> shop-backend@1.0.0 prisma /srv/app
> prisma "migrate" "status"

 WARN  Issue while reading "/root/.npmrc". Failed to replace env in config: ${{NPM_TOKEN}}
npm warn Unknown user config "nodedir". This will stop working in the next major version of npm.
{CLASSIC_PENDING}
 ELIFECYCLE  Command failed with exit code 1.
"""

SQLSERVER = """Prisma schema loaded from prisma/schema.prisma
Datasource "db" - SQL Server

1 migration found in prisma/migrations

Database schema is up to date!
"""

MYSQL = """Datasource "db": MySQL database "shop" at "localhost:3306"

1 migration found in prisma/migrations

Database schema is up to date!
"""

SQLITE = """Datasource "db": SQLite database "dev.db" at "file:./dev.db"

1 migration found in prisma/migrations

Database schema is up to date!
"""


@pytest.mark.parametrize(
    ("text", "rc", "expected"),
    [
        (
            CLASSIC_PENDING,
            1,
            {
                "state": "pending",
                "pending": ["0_init", "1_add_orders", "20240301090000_add_index"],
                "local_migration_count": 3,
                "database": "shop",
                "schema": "public",
            },
        ),
        (CLASSIC_UP_TO_DATE, 0, {"state": "up_to_date", "in_sync": True, "error_code": None, "error_message": None}),
        (CLASSIC_FAILED_4X, 1, {"state": "failed", "failed": ["20240301090000_require_weight"]}),
        # Before 4.3, "failed" and "not managed" exited 0.
        (CLASSIC_FAILED_4X, 0, {"state": "failed", "failed": ["20240301090000_require_weight"]}),
        (
            CLASSIC_DIVERGED,
            1,
            {
                "state": "diverged",
                "last_common_migration": "20240201090000_add_index",
                "pending": ["20240305090000_a", "20240306090000_b"],
                "missing_locally": ["20240210090000_hotfix", "20240211090000_hotfix2"],
                "local_migration_count": 4,
            },
        ),
        (CLASSIC_NOT_MANAGED_BASELINE, 1, {"state": "not_managed", "local_migration_count": 3}),
        (CLASSIC_NOT_MANAGED_PLAIN, 0, {"state": "not_managed", "local_migration_count": 0}),
        (
            P1001_OLD,
            1,
            {
                "state": "error",
                "error_code": "P1001",
                "error_message": "Can't reach database server at `db.internal`:`5432`",
            },
        ),
        (
            P1001_NEW,
            1,
            {
                "state": "error",
                "error_code": "P1001",
                "error_message": "Can't reach database server at `db.internal:5432`",
            },
        ),
        (P1000, 1, {"state": "error", "error_code": "P1000"}),
        (P1003_OLD, 1, {"state": "error", "error_code": "P1003"}),
        (
            DIVERGED_NO_COMMON,
            1,
            {"state": "diverged", "last_common_migration": None, "pending": ["0_init"], "missing_locally": []},
        ),
        (P1003, 1, {"state": "error", "error_code": "P1003", "database": "shop"}),
        (
            P1012,
            1,
            {
                "state": "error",
                "error_code": "P1012",
                "error_message": "Prisma schema validation - (get-config wasm)",
                "database": None,
            },
        ),
        (PRISMA7_PENDING, 1, {"state": "pending", "pending": ["20240301090000_add_index"], "local_migration_count": 1}),
        (PNPM_WRAPPED, 1, {"state": "pending", "pending": ["0_init", "1_add_orders", "20240301090000_add_index"]}),
        (SQLSERVER, 0, {"state": "up_to_date", "database": None, "local_migration_count": 1}),
        (MYSQL, 0, {"state": "up_to_date", "database": "shop", "schema": None}),
        (SQLITE, 0, {"state": "up_to_date", "database": "dev.db"}),
    ],
    ids=[
        "classic-pending",
        "classic-up-to-date",
        "classic-failed-4x",
        "failed-exit-0-before-4.3",
        "classic-diverged",
        "not-managed-baseline-hint",
        "not-managed-no-hint",
        "p1001-before-5.14",
        "p1001-after-5.14",
        "p1000",
        "p1003-before-6.7",
        "diverged-no-common",
        "p1003",
        "p1012",
        "prisma7",
        "pnpm-noise",
        "sqlserver",
        "mysql",
        "sqlite",
    ],
)
def test_status_forms(text, rc, expected):
    facts = parse_migrate_status(text, rc)
    for key, value in expected.items():
        assert facts[key] == value, (key, facts)
    assert facts["in_sync"] is (facts["state"] == "up_to_date")


@pytest.mark.parametrize(
    "transform",
    [
        lambda t: t.replace("\n", "\r\n"),
        lambda t: "\x1b[2m" + t.replace("Following", "\x1b[1m\x1b[33mFollowing").replace("0_init", "0_init\x1b[39m"),
        lambda t: t.replace("\n", "\r\n").replace("Following", "\x1b[1mFollowing"),
    ],
    ids=["crlf", "ansi", "crlf-ansi"],
)
def test_crlf_and_colours(transform):
    facts = parse_migrate_status(transform(CLASSIC_PENDING), 1)
    assert facts["state"] == "pending"
    assert facts["pending"] == ["0_init", "1_add_orders", "20240301090000_add_index"]


def test_interleaved_stdout_and_stderr():
    """Prisma writes the datasource to stdout and the verdict to stderr."""
    stderr = "Following migration have not yet been applied:\n0_init\n\nTo apply migrations in production run x.\n"
    stdout = f"{PG_DS}\n\n1 migration found in prisma/migrations\n"
    for text in (stdout + stderr, stderr + stdout):
        facts = parse_migrate_status(text, 1)
        assert facts["state"] == "pending"
        assert facts["pending"] == ["0_init"]
        assert facts["database"] == "shop"


@pytest.mark.parametrize(
    ("first", "second", "winner"),
    [
        ("diverged", "failed", "diverged"),
        ("failed", "not_managed", "failed"),
        ("not_managed", "pending", "not_managed"),
        ("pending", "up_to_date", "pending"),
    ],
)
def test_precedence(first, second, winner):
    blocks = {
        "diverged": "Your local migration history and the migrations table from your database are different:\n"
        "The migration from the database are not found locally in prisma/migrations:\nx_gone\n",
        "failed": "Following migration have failed:\nx_failed\n",
        "not_managed": "The current database is not managed by Prisma Migrate.\n",
        "pending": "Following migration have not yet been applied:\nx_pending\n",
        "up_to_date": "Database schema is up to date!\n",
    }
    assert parse_migrate_status(blocks[second] + "\n" + blocks[first], 1)["state"] == winner
    assert parse_migrate_status(blocks[first] + "\n" + blocks[second], 1)["state"] == winner


@pytest.mark.parametrize(
    ("text", "rc", "message"),
    [
        ("", None, "the command printed nothing"),
        ("", 1, "the command printed nothing and exited 1"),
        ("Something new from Prisma 9\n", 0, "unrecognised output: Something new from Prisma 9"),
        ("Database schema is up to date!\n", 1, "Prisma said up to date but exited 1"),
        ("Following migrations have not yet been applied:\n", 1, "listed none"),
        ("sh: 1: prisma: not found\n", 127, "the Prisma command was not found (exit 127)"),
        ('{"migrations": []}', 0, "JSON output"),
    ],
)
def test_never_guesses_up_to_date(text, rc, message):
    facts = parse_migrate_status(text, rc)
    assert facts["state"] == "error"
    assert facts["in_sync"] is False
    assert message in facts["error_message"]


def test_up_to_date_with_an_error_line_is_an_error():
    facts = parse_migrate_status("Error: P1017: Server has closed the connection.\nDatabase schema is up to date!\n", 0)
    assert facts["state"] == "error"
    assert facts["error_code"] == "P1017"


def test_three_thousand_pending_names():
    names = [f"{20240101000000 + i}_migration_{i}" for i in range(3000)]
    text = f"{PG_DS}\n\n3000 migrations found in prisma/migrations\n\nFollowing migrations have not yet been applied:\n"
    text += "\n".join(names) + "\n\nTo apply migrations in production run prisma migrate deploy.\n"
    facts = parse_migrate_status(text, 1)
    assert facts["pending"] == names
    assert facts["summary"].endswith("(+2990 more)")


def test_json_detection():
    assert looks_like_json('{"status": "up_to_date"}')
    assert not looks_like_json("{ not json")
    assert not looks_like_json("Database schema is up to date!")


def test_clean_lines_drops_only_noise():
    lines = clean_lines("> app@1.0.0 prisma\nnpm warn x\n WARN  y\n ELIFECYCLE z\n0_init\n")
    assert lines == ["0_init", ""]


# --- migrate deploy ------------------------------------------------------------

DEPLOY_APPLIED_CLASSIC = f"""Prisma schema loaded from prisma/schema.prisma
{PG_DS}

3 migrations found in prisma/migrations

Applying migration `20240301090000_a`
Applying migration `20240302090000_b`

The following migrations have been applied:

migrations/
  └─ 20240301090000_a/
    └─ migration.sql
  └─ 20240302090000_b/
    └─ migration.sql

All migrations have been successfully applied.
"""

DEPLOY_CREATED = f"""{PG_DS}

PostgreSQL database shop_typo created at db.internal:5432

1 migration found in prisma/migrations

The following migration(s) have been applied:

migrations/
  └─ 0_init/
    └─ migration.sql

All migrations have been successfully applied.
"""

P3018 = f"""{PG_DS}

3 migrations found in prisma/migrations

Applying migration `20240301090000_require_weight`
Error: P3018

A migration failed to apply. New migrations cannot be applied before the error is recovered from. Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve

Migration name: 20240301090000_require_weight

Database error code: 23502

Database error:
ERROR: column "weight_grams" of relation "products" contains null values

DbError {{ severity: "ERROR", parsed_severity: Some(Error), code: SqlState(E23502) }}
"""

P3009 = f"""{PG_DS}

3 migrations found in prisma/migrations

Error: P3009

migrate found failed migrations in the target database, new migrations will not be applied. Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve
The `20240301090000_require_weight` migration started at 2024-03-01 09:00:00.123456 UTC failed

"""

P1002 = f"""{PG_DS}

Error: P1002

The database server at `db.internal:5432` was reached but timed out.

Please try again.

Please make sure your database server is running at `db.internal:5432`.

Context: Timed out trying to acquire a postgres advisory lock (SELECT pg_advisory_lock(72707369)). Elapsed: 10000ms. See https://pris.ly/d/migrate-advisory-locking for details.
"""

P3009_WITH_LOGS = f"""{PG_DS}

Error: P3009

migrate found failed migrations in the target database, new migrations will not be applied. Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve
The `20240612135202_change` migration started at 2024-06-12 13:57:46.60693 UTC failed with the following logs:
A migration failed to apply. New migrations cannot be applied before the error is recovered from. Read more about how to resolve migration issues in a production database: https://pris.ly/d/migrate-resolve

Migration name: 20240612135202_change

Database error code: 42P01

Database error:
ERROR: relation "ProductImage" does not exist

   0: sql_schema_connector::apply_migration::apply_script
           with migration_name="20240612135202_change"
             at schema-engine/connectors/sql-schema-connector/src/apply_migration.rs:106

"""

P3005 = f"""{PG_DS}

1 migration found in prisma/migrations

Error: P3005

The database schema is not empty. Read more about how to baseline an existing production database: https://pris.ly/d/migrate-baseline

"""

SQLSERVER_CREATED = """Datasource "db": SQL Server database

SQL Server database created.

1 migration found in prisma/migrations

Applying migration `0_init`

The following migration have been applied:

migrations/
  └─ 0_init/
    └─ migration.sql
      
All migrations have been successfully applied.
"""

MODIFIED = f"""{PG_DS}

3 migrations found in prisma/migrations

WARNING The following migrations have been modified since they were applied:
20240201090000_add_index

No pending migrations to apply.
"""


@pytest.mark.parametrize(
    ("text", "rc", "expected"),
    [
        (
            DEPLOY_APPLIED_CLASSIC,
            0,
            {"result": "applied", "applied": ["20240301090000_a", "20240302090000_b"], "database": "shop"},
        ),
        (
            DEPLOY_CREATED,
            0,
            {"result": "applied", "applied": ["0_init"], "database_created": True, "database": "shop"},
        ),
        (
            P3018,
            1,
            {
                "result": "failed",
                "failed_migration": "20240301090000_require_weight",
                "error_code": "P3018",
                "database_error_code": "23502",
                "database_error": 'ERROR: column "weight_grams" of relation "products" contains null values',
            },
        ),
        (P3009, 1, {"result": "failed", "failed_migration": "20240301090000_require_weight", "error_code": "P3009"}),
        (P1002, 1, {"result": "error", "error_code": "P1002", "failed_migration": None}),
        (
            P3009_WITH_LOGS,
            1,
            {
                "result": "failed",
                "error_code": "P3009",
                "failed_migration": "20240612135202_change",
                "database_error": 'ERROR: relation "ProductImage" does not exist',
                "database_error_code": "42P01",
            },
        ),
        (
            P3005,
            1,
            {
                "result": "error",
                "error_code": "P3005",
                "error_message": "The database schema is not empty. Read more about how to baseline an existing production database: https://pris.ly/d/migrate-baseline",
            },
        ),
        (
            SQLSERVER_CREATED,
            0,
            {"result": "applied", "applied": ["0_init"], "database_created": True, "database": None},
        ),
        (P1001_NEW, 1, {"result": "error", "error_code": "P1001"}),
        (MODIFIED, 0, {"result": "nothing_pending", "modified": ["20240201090000_add_index"]}),
        ("", 1, {"result": "error", "error_message": "exited 1 and printed nothing"}),
        ("", 127, {"result": "error", "error_message": "the Prisma command was not found (exit 127)"}),
        ("All migrations have been successfully applied.\n", 0, {"result": "error"}),
        (DEPLOY_APPLIED_CLASSIC, 1, {"result": "error"}),
    ],
    ids=[
        "applied",
        "database-created",
        "p3018",
        "p3009",
        "p1002-advisory-lock",
        "p3009-with-logs",
        "p3005-not-empty",
        "sqlserver-created-singular",
        "p1001",
        "modified-warning",
        "empty",
        "not-found",
        "no-applied-list",
        "applied-but-exit-1",
    ],
)
def test_deploy_forms(text, rc, expected):
    facts = parse_migrate_deploy(text, rc)
    for key, value in expected.items():
        assert facts[key] == value, (key, facts)


def test_deploy_created_database_is_an_alarm_in_the_summary():
    summary = parse_migrate_deploy(DEPLOY_CREATED, 0)["summary"]
    assert "WARNING: deploy created database shop_typo" in summary


def test_deploy_applied_tree_with_crlf_and_colours():
    text = DEPLOY_APPLIED_CLASSIC.replace("\n", "\r\n").replace("└─ 2024", "└─ \x1b[1m2024")
    assert parse_migrate_deploy(text, 0)["applied"] == ["20240301090000_a", "20240302090000_b"]
