"""prisma_migration_plan: the pending SQL read by PostgreSQL's parser and squawk, as the gate and the
row-loss guard use it (the classification itself is tested in test_sql_plan.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[4] / "plugins" / "action"))

from prisma import FilterModule  # noqa: E402
from prisma_migration_plan import build_plan  # noqa: E402
from sql_plan import SqlPlanError  # noqa: E402

row_loss = FilterModule().filters()["prisma_row_loss"]


def migration(name: str, sql: str) -> dict:
    return {"name": name, "file": f"prisma/migrations/{name}/migration.sql", "sql": sql}


def test_the_gate_s_list_names_what_is_lost_with_file_and_line():
    plan = build_plan(
        [
            migration("1_index", 'ALTER INDEX "a" RENAME TO "b";\nDROP INDEX "c";\n'),
            migration("2_drop", 'DELETE FROM "order_items";\nDROP TABLE "orders" CASCADE;\n'),
        ],
        lint=False,
    )
    # Prisma's index renames and drops are not destructive; a DELETE without WHERE and a DROP TABLE are.
    assert [(d["file"], d["line"], d["kind"]) for d in plan["destructive"]] == [
        ("prisma/migrations/2_drop/migration.sql", 1, "all rows of public.order_items"),
        ("prisma/migrations/2_drop/migration.sql", 2, "table public.orders"),
    ]
    assert plan["loses_rows"] == ["public.order_items", "public.orders"]
    assert [s["migration"] for s in plan["statements"]] == ["1_index", "1_index", "2_drop", "2_drop"]


def test_a_do_block_that_drops_a_table_is_destructive():
    plan = build_plan([migration("1_do", 'DO $$ BEGIN\n  DROP TABLE "Order";\nEND $$;\n')], lint=False)
    assert plan["destructive"][0]["kind"] == "table public.Order"
    assert plan["loses_rows"] == ["public.Order"]


def test_unqualified_names_are_in_the_run_s_schema():
    plan = build_plan([migration("1", "TRUNCATE orders;\nDROP TABLE audit.orders;\n")], schema="tenant_a", lint=False)
    assert plan["loses_rows"] == ["audit.orders", "tenant_a.orders"]


def test_a_blocking_index_build_shows_its_lock_and_the_safe_form():
    plan = build_plan([migration("1", 'CREATE INDEX "i" ON "orders"("placed_at");\n')], lint=False)
    [blocking] = plan["blocking"]
    assert blocking["cost"] == "index build"
    assert blocking["relations"][0]["lock"] == "SHARE"
    assert "CONCURRENTLY" in blocking["safe_form"]
    assert plan["destructive"] == []


def test_squawk_s_findings_carry_the_file_and_a_one_based_line():
    plan = build_plan(
        [migration("1", 'SELECT 1;\nCREATE INDEX "i" ON "orders"("placed_at");\n')], server_version="15.4"
    )
    finding = next(f for f in plan["lint"]["findings"] if f["rule"] == "require-concurrent-index-creation")
    assert (finding["file"], finding["line"]) == ("prisma/migrations/1/migration.sql", 2)
    assert finding["parser"] == "blocking"  # both readings, side by side in the plan


def test_a_loss_quotes_the_live_rows_of_the_table():
    live = {"public.orders": {"rows": 41200000}}
    plan = build_plan([migration("1", 'DROP TABLE "orders";\n')], relations=live, lint=False)
    assert plan["destructive"][0]["evidence"] == "public.orders holds ~41,200,000 rows"


def test_a_statement_the_parser_rejects_names_the_migration_and_line():
    with pytest.raises(SqlPlanError, match=r"cannot verify migration 2_bad line 2: "):
        build_plan([migration("1_ok", "SELECT 1;\n"), migration("2_bad", "SELECT 1;\nDROP TABLE ;\n")], lint=False)


def test_the_row_loss_guard_excuses_exactly_the_relations_the_parser_names():
    before = {"Order": 5, "Order Items": 3, "User": 2, "orders": 4}
    after = {"Order": 1, "User": 0}
    # The SQL emptied public."Order Items" and audit."User": neither excuses another table.
    lost = row_loss(before, after, ["public.Order Items", "audit.User"], "public")
    assert [row["table"] for row in lost] == ["Order", "User", "orders"]
    assert row_loss({"orders": 4}, {}, ["tenant_a.orders"], "tenant_a") == []
    assert row_loss({"orders": 4}, {}, ["public.orders"], "tenant_a") == [
        {"table": "orders", "before": 4, "after": None}
    ]


def test_only_migrations_that_leave_nothing_behind_when_they_fail_may_be_retried():
    plan = build_plan(
        [
            migration("1_one", 'SET lock_timeout = \'2s\';\nALTER TABLE "orders" ADD COLUMN "note" TEXT;\n'),
            migration("2_two", 'ALTER TABLE "orders" ADD COLUMN "a" INT;\nALTER TABLE "orders" ADD COLUMN "b" INT;\n'),
            migration("3_concurrent", 'CREATE INDEX CONCURRENTLY "o_idx" ON "orders"("note");\n'),
            migration("4_do", 'DO $$ BEGIN ALTER TABLE "orders" ADD COLUMN "c" INT; END $$;\n'),
            migration("5_new", 'CREATE TABLE "audit" ("id" INT);\n'),
        ],
        lint=False,
    )
    # two statements may commit one by one (adapter-pg, Prisma >= 7.4); a failed concurrent build leaves an
    # invalid index; a DO block's statements are read one by one here and are not retried
    assert plan["retry_safe"] == ["1_one", "5_new"]
    assert plan["relations"] == ["public.orders"]  # a table created by the SQL blocks nobody


def test_a_statement_the_rehearsal_measured_is_estimated_from_the_measure():
    sql = 'ALTER TABLE "orders" ADD COLUMN "slow" INTEGER NOT NULL DEFAULT "slow_default"();\n'
    live = {"public.orders": {"rows": 1, "table_bytes": 8192, "index_bytes": 0, "size_bytes": 8192}}
    record = {
        "rehearsed_at": "2026-12-02T21:28:19Z", "host": "staging", "database": "shop",
        "locks_observed": {"locks": [
            {"relation": "public.orders", "mode": "ACCESS EXCLUSIVE", "blocks": "reads and writes", "held_s": 7.5,
             "statements": ['ALTER TABLE "orders" ADD COLUMN "slow" INTEGER NOT NULL DEFAULT "slow_default"()']},
        ]},
    }  # fmt: skip
    plain = build_plan([migration("1_slow", sql)], lint=False, relations=live)
    assert plain["over_budget"] == []  # by the rates a one-row table is rewritten at once
    plan = build_plan([migration("1_slow", sql)], lint=False, relations=live, rehearsal=record)
    [blocking] = plan["blocking"]
    assert blocking["estimate"]["seconds"] == 7.5
    assert blocking["estimate"]["high"] == 11.25
    assert "measured by the rehearsal of 2026-12-02T21:28:19Z on staging/shop" in blocking["estimate"]["text"]
    assert plan["over_budget"] == [blocking]  # the measure is over the 5 s budget: the gate refuses it
    other = build_plan([migration("1_other", 'ALTER TABLE "orders" ALTER COLUMN "x" TYPE bigint;\n')], lint=False,
                       relations=live, rehearsal=record)  # fmt: skip
    assert "measured" not in other["blocking"][0]["estimate"]["text"]  # another statement: the rates
