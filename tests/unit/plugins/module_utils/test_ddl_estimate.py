"""ddl_estimate: how long a blocking statement holds its lock, from the live size of its table, and the
write rate from two samples of the counters (prisma_facts.relation_stats)."""

from __future__ import annotations

import json

import pytest
from ddl_estimate import DEFAULT_RATES, RateError, estimate, load_rates
from prisma_facts import relation_stats
from sql_plan import plan_sql

LIVE = {
    "public.orders": {
        "rows": 41_200_000,
        "table_bytes": 10_000_000_000,
        "index_bytes": 2_000_000_000,
        "size_bytes": 12_000_000_000,
        "writes_per_s": 350.0,
        "sessions": 3,
    },
    "public.tiny": {
        "rows": 10,
        "table_bytes": 8192,
        "index_bytes": 16384,
        "size_bytes": 24576,
        "writes_per_s": 0.0,
        "sessions": 0,
    },
}
RATES = {"index_build": 50_000_000, "full_rewrite": 20_000_000, "full_scan": 100_000_000}


def blocking(sql: str) -> dict:
    [statement] = [s for s in plan_sql(sql, "m") if s["blocking"]]
    return statement


def test_an_index_build_on_a_large_table_says_what_it_blocks_for_how_long_and_from_what():
    result = estimate(blocking('CREATE INDEX "i" ON "orders"("placed_at");'), LIVE, RATES, "the test's rates")
    assert result["seconds"] == 200.0  # 10 GB of table at 50 MB/s
    assert (result["low"], result["high"]) == (150.0, 300.0)
    assert result["relation"] == "public.orders"
    assert result["text"] == (
        "blocks writes of public.orders (41.2 M rows, 11.2 GB, ~350 writes/s, 3 session(s) on it now)"
        " for ~2–5 min (index build at the rate of the test's rates)"
    )


def test_a_rewrite_counts_the_indexes_it_rebuilds():
    result = estimate(blocking('ALTER TABLE "orders" ALTER COLUMN "total" TYPE bigint;'), LIVE, RATES, "r")
    assert result["seconds"] == 600.0  # 12 GB at 20 MB/s


def test_a_small_table_is_blocking_for_less_than_a_second():
    result = estimate(blocking('CREATE INDEX "i" ON "tiny"("a");'), LIVE, RATES, "r")
    assert result["high"] < 0.01
    assert "for ~<1 s" in result["text"]


def test_a_table_created_earlier_in_the_run_costs_nothing():
    statements = plan_sql('CREATE TABLE "fresh" (a int);\nCREATE INDEX "i" ON "fresh"("a");', "m")
    index = statements[1]
    assert estimate(index, LIVE, RATES, "r")["seconds"] == 0.0


def test_what_cannot_be_read_has_no_estimate():
    statement = next(s for s in plan_sql("DO $$ BEGIN EXECUTE 'DROP TABLE orders'; END $$;", "m") if s["blocking"])
    result = estimate(statement, LIVE, RATES, "r")
    assert result["seconds"] is None
    assert result["high"] is None
    assert "for an unknown time" in result["text"]


def test_rates_come_from_the_inventory_then_the_calibration_then_the_defaults(tmp_path):
    calibration = tmp_path / "ddl_rates.json"
    calibration.write_text(json.dumps({"rates": RATES, "measured_at": "2026-12-02"}))
    assert load_rates({"index_build": "1e8"}, str(calibration)) == (
        {**DEFAULT_RATES, "index_build": 1e8},
        "the inventory's ddl_rates",
    )
    assert load_rates(None, str(calibration)) == (RATES, "the calibration of make bench-ddl (2026-12-02)")
    rates, source = load_rates({}, str(tmp_path / "missing.json"))
    assert rates == DEFAULT_RATES
    assert "no calibration" in source


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"index_build": 0}, "ddl_rates.index_build must be a number of bytes per second above 0, not 0"),
        ({"index_build": "fast"}, "ddl_rates.index_build must be a number of bytes per second above 0, not 'fast'"),
        ({"vacuum": 1}, "ddl_rates must be a mapping of index_build, full_rewrite, full_scan to bytes per second"),
        ("fast", "ddl_rates must be a mapping of index_build, full_rewrite, full_scan to bytes per second"),
    ],
)
def test_bad_rates_are_one_line(override, message):
    with pytest.raises(RateError, match=f"^{message}$"):
        load_rates(override)


def test_the_write_rate_is_the_difference_of_two_samples():
    first = {"at": 100.0, "relations": {"public.orders": {"rows": 5, "writes": 1000, "sessions": 0}}}
    second = {
        "at": 102.5,
        "relations": {
            "public.orders": {"rows": 5, "writes": 1875, "sessions": 2},
            "public.new": {"rows": 0, "writes": 7, "sessions": 0},
        },
    }
    stats = relation_stats(first, second)
    assert stats["sampled_seconds"] == 2.5
    assert stats["relations"]["public.orders"] == {"rows": 5, "sessions": 2, "writes_per_s": 350.0}
    assert stats["relations"]["public.new"]["writes_per_s"] == 0.0  # first seen in the second sample
