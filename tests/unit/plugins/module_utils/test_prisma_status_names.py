"""Issue 16 B: migration names Prisma accepts parse as Prisma prints them, and the lists end where Prisma's
end. Real output (data/real-names.json, captured by data/capture_names.py from Prisma 6.19 and 7.10) and
written forms: spaces, '+', non-ASCII letters, emoji, quotes, leading and trailing spaces, names that read
like Prisma's headers, errors or its datasource, long lists, CRLF and colours."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from prisma_status import parse_datasource, parse_migrate_deploy, parse_migrate_status
from prismaapp import MIGRATIONS, UNUSUAL_NAMES

REAL = json.loads((Path(__file__).resolve().parent / "data" / "real-names.json").read_text())
FIXTURE = MIGRATIONS
UNUSUAL = UNUSUAL_NAMES  # the folders of tests/integration/test_names_and_datasource.py
ALL = sorted(FIXTURE + UNUSUAL)  # Prisma's order: by name (the leading space first)
FAILING = '20240401090000_fail "q" back\\slash é+ 🚀'


def real(case: str, order: str = "stdout+stderr") -> tuple[str, int]:
    c = REAL[case]
    text = c["stdout"] + "\n" + c["stderr"] if order == "stdout+stderr" else c["stderr"] + c["stdout"]
    return text, c["rc"]


ORDERS = ["stdout+stderr", "stderr+stdout"]  # the modules read the first; a terminal shows either


def needs(case: str):
    if case not in REAL:
        pytest.skip(f"{case} was not captured (the Prisma 7 fixture was not installed when capture_names.py ran)")


# --- real output -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("version", ["prisma6", "prisma7"])
def test_real_pending_list_holds_every_unusual_name_as_printed(version, order):
    needs(f"{version}-status-unusual-pending")
    facts = parse_migrate_status(*real(f"{version}-status-unusual-pending", order))
    assert facts["state"] == "pending"
    assert facts["pending"] == ALL
    assert facts["local_migration_count"] == len(ALL)
    assert facts["error_code"] is None  # "Error: looks like an error" is a name, not an error
    assert facts["error_message"] is None
    assert facts["database"] == "app"  # not the name that reads like a datasource line


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("case", ["prisma6-deploy-unusual-applied-color", "prisma7-deploy-unusual-applied"])
def test_real_applied_tree_holds_every_unusual_name(case, order):
    needs(case)
    facts = parse_migrate_deploy(*real(case, order))
    assert facts["result"] == "applied"
    assert facts["applied"] == ALL
    assert facts["failed_migration"] is None
    assert facts["error_code"] is None


def test_real_colours_split_the_name_and_are_stripped():
    assert "\x1b[36m\x1b[1mc++ plus+" in REAL["prisma6-deploy-unusual-applied-color"]["stdout"]


@pytest.mark.parametrize("order", ORDERS)
def test_real_up_to_date_and_failed_with_unusual_names(order):
    assert parse_migrate_status(*real("prisma6-status-unusual-up-to-date", order))["state"] == "up_to_date"
    deploy = parse_migrate_deploy(*real("prisma6-deploy-unusual-failed", order))
    assert deploy["result"] == "failed"
    assert deploy["failed_migration"] == FAILING  # the backtrace's Rust escapes undone
    assert deploy["database_error"] == 'Error querying the database: ERROR: relation "unusual_0" already exists'
    status = parse_migrate_status(*real("prisma6-status-unusual-failed", order))
    assert status["state"] == "failed"
    assert status["failed"] == [FAILING]


@pytest.mark.parametrize("order", ORDERS)
def test_real_diverged_lists_end_where_prismas_end(order):
    facts = parse_migrate_status(*real("prisma6-status-unusual-diverged", order))
    assert facts["state"] == "diverged"
    assert facts["last_common_migration"] == "20240302090000_c++ plus+"
    assert facts["pending"] == ["20240350090000_new é one", "20240351090000_new + two"]
    # printed last on stderr: the other stream's first line follows it directly in stderr+stdout
    assert facts["missing_locally"] == ["20240303090000_café_ñandú", "20240304090000_🚀 launch"]
    assert facts["database"] == "app"


def test_real_folder_without_sql_is_listed_by_prisma():
    facts = parse_migrate_status(*real("prisma6-status-folder-without-sql"))
    assert facts["pending"] == [*FIXTURE, "20240501090000_no sql here"]


def test_real_rolled_back_migration_is_not_listed_by_this_engine():
    """What makes the pending-list check necessary: Prisma says up to date, its deploy applies it again."""
    facts = parse_migrate_status(*real("prisma6-status-rolled-back"))
    assert facts["state"] == "up_to_date"
    assert facts["pending"] == []


# --- written forms -----------------------------------------------------------------------------------------

HEAD = 'Datasource "db": PostgreSQL database "shop", schema "public" at "db.internal:5432"\n\n'
TAIL = "\nTo apply migrations in development run prisma migrate dev.\nTo apply migrations in production run prisma migrate deploy.\n"


def pending_text(names: list[str]) -> str:
    return HEAD + f"{len(names)} migrations found in prisma/migrations\nFollowing migrations have not yet been applied:\n" + "\n".join(names) + "\n" + TAIL  # fmt: skip


HEADER_LOOKALIKES = [
    "Following migrations have not yet been applied:",
    "Following migration have failed:",
    "Database schema is up to date!",
    "The current database is not managed by Prisma Migrate.",
    "Your local migration history and the migrations table from your database are different:",
    "The last common migration is: x",
    "Error: P1001: Can't reach database server at `db:5432`",
    "Error code: P3009",
    'migration_name="evil"',
    "Migration name: evil",
    "All migrations have been successfully applied.",
    "5 migrations found in prisma/migrations",
    "To apply migrations in production run prisma migrate deploy.",
]


@pytest.mark.parametrize(
    "names",
    [
        [
            "20240101000000_a b",
            "20240102000000_c+d",
            "20240103000000_é",
            "20240104000000_日本語",
            "20240105000000_😀🎉",
        ],
        ["  two leading", "two trailing  ", "tab\tinside", "x"],
        HEADER_LOOKALIKES,
        ["20240101000000_" + "long name " * 40],
    ],
    ids=["space-plus-accent-cjk-emoji", "edge-spaces", "header-lookalikes", "long-name"],
)
def test_pending_names_are_taken_verbatim(names):
    facts = parse_migrate_status(pending_text(names), 1)
    assert facts["state"] == "pending"
    assert facts["pending"] == names
    assert facts["error_code"] is None
    assert facts["error_message"] is None
    assert facts["failed"] == []
    assert facts["missing_locally"] == []


def test_header_lookalikes_in_the_applied_tree_are_names():
    tree = "".join(f"  └─ {n}/\n    └─ migration.sql\n" for n in HEADER_LOOKALIKES)
    text = HEAD + "The following migration(s) have been applied:\n\nmigrations/\n" + tree + "      \nAll migrations have been successfully applied.\n"  # fmt: skip
    facts = parse_migrate_deploy(text, 0)
    assert facts["result"] == "applied"
    assert facts["applied"] == HEADER_LOOKALIKES
    assert facts["failed_migration"] is None
    assert facts["error_code"] is None


def test_three_thousand_unusual_names():
    names = [f"{20240101000000 + i}_migration {i} +é🚀" for i in range(3000)]
    facts = parse_migrate_status(pending_text(names), 1)
    assert facts["pending"] == names
    assert facts["summary"].endswith("(+2990 more)")
    tree = "".join(f"  └─ {n}/\n    └─ migration.sql\n" for n in names)
    deploy = parse_migrate_deploy(HEAD + "The following migration(s) have been applied:\n\nmigrations/\n" + tree + "\nAll migrations have been successfully applied.\n", 0)  # fmt: skip
    assert deploy["applied"] == names


@pytest.mark.parametrize(
    "transform",
    [
        lambda t: t.replace("\n", "\r\n"),
        lambda t: t.replace("20240101000000_a b", "\x1b[1m20240101000000_a b\x1b[22m").replace("Following", "\x1b[33mFollowing"),
        lambda t: t.replace("\n", "\r\n").replace("é", "\x1b[36mé\x1b[39m"),
        lambda t: "\x1b[2m" + t.replace("\n", "\r\n") + "\x1b[0m",
    ],
    ids=["crlf", "ansi", "crlf-ansi-inside-a-name", "dim-everything"],
)  # fmt: skip
def test_crlf_and_colours_around_unusual_names(transform):
    names = ["20240101000000_a b", "20240102000000_c+d", "20240103000000_é", "20240104000000_😀"]
    facts = parse_migrate_status(transform(pending_text(names)), 1)
    assert facts["pending"] == names


def test_prisma4_blank_lines_before_the_names_and_an_empty_list():
    text = HEAD + "Following migration have failed:\n\n20240301090000_a b+é\n\n\nDuring development if ...\n"
    assert parse_migrate_status(text, 1)["failed"] == ["20240301090000_a b+é"]
    diverged = (
        "Your local migration history and the migrations table from your database are different:\n\n"
        "The last common migration is: 20240201090000_a b\n\n"
        "The migration have not yet been applied:\n\n\n"  # empty: Prisma joins an empty list
        "The migrations from the database are not found locally in prisma/migrations:\n"
        "20240210090000_c+d\n20240211090000_é 🚀\n"
    )
    facts = parse_migrate_status(diverged, 1)
    assert facts["state"] == "diverged"
    assert facts["last_common_migration"] == "20240201090000_a b"
    assert facts["pending"] == []
    assert facts["missing_locally"] == ["20240210090000_c+d", "20240211090000_é 🚀"]


@pytest.mark.parametrize(
    "follows",
    [
        "Prisma schema loaded from prisma/schema.prisma",
        "Loaded Prisma config from prisma.config.ts.",
        'Datasource "db": PostgreSQL database "shop", schema "public" at "db.internal:5432"',
        " ELIFECYCLE  Command failed with exit code 1.",
        'npm warn Unknown user config "nodedir".',
    ],
)
def test_a_list_ends_at_the_first_line_of_another_stream(follows):
    text = "The migrations from the database are not found locally in prisma/migrations:\n20240210090000_a b\n"
    text = "Your local migration history and the migrations table from your database are different:\n" + text
    facts = parse_migrate_status(text + follows + "\n\n5 migrations found in prisma/migrations\n", 1)
    assert facts["missing_locally"] == ["20240210090000_a b"]


def test_a_name_that_reads_like_a_stream_start_ends_the_list_and_is_told():
    """The one limit: a folder named like the first line of Prisma's stdout ends the list. The datasource line
    then conflicts (datasource_check stops) and the list disagrees with the audit (compare_pending stops)."""
    evil = 'Datasource "db": PostgreSQL database "other", schema "public" at "evil:5432"'
    facts = parse_migrate_status(pending_text(["20240101000000_a", evil, "20240103000000_c"]), 1)
    assert facts["pending"] == ["20240101000000_a"]
    ds = parse_datasource(pending_text(["20240101000000_a", evil, "20240103000000_c"]))
    assert ds["database"] == "shop"
    assert ds["conflicting"] == [evil]


@pytest.mark.parametrize(
    ("line", "name"),
    [
        ('           with migration_name="20240301090000_a \\"b\\" c\\\\d"', '20240301090000_a "b" c\\d'),
        ('           with migration_name="20240301090000_\\u{1f680} \\t x"', "20240301090000_🚀 \t x"),
        ('           with migration_name="20240301090000_é+ 🚀"', "20240301090000_é+ 🚀"),
        ("Migration name: 20240301090000_a b + c ", "20240301090000_a b + c "),
        ("The `20240301090000_a b` migration started at 2024-03-01 09:00:00.123456 UTC failed", "20240301090000_a b"),
        ("The `20240301090000_x` y` migration started at 2024-03-01 09:00:00 UTC failed with the following logs:",
         "20240301090000_x` y"),
    ],
    ids=["rust-quotes-backslash", "rust-unicode-escape", "raw-unicode", "native-p3018", "p3009", "p3009-backtick"],
)  # fmt: skip
def test_failed_migration_names(line, name):
    text = (
        HEAD
        + "6 migrations found in prisma/migrations\n\nError: P3018\n\nA migration failed to apply.\n\n"
        + line
        + "\n"
    )
    facts = parse_migrate_deploy(text, 1)
    assert facts["result"] == "failed"
    assert facts["failed_migration"] == name


def test_modified_warning_and_last_common_with_unusual_names():
    text = HEAD + "WARNING The following migrations have been modified since they were applied:\n20240201090000_a b+é\n\nNo pending migrations to apply.\n"  # fmt: skip
    assert parse_migrate_deploy(text, 0)["modified"] == ["20240201090000_a b+é"]
    text = "Your local migration history and the migrations table from your database are different:\n\nThe last common migration is: 20240201090000_a b \n"  # fmt: skip
    assert parse_migrate_status(text, 1)["last_common_migration"] == "20240201090000_a b "
