"""prisma_locks: a blocker's query without literals, one line per blocker, the wait loop, and which
mechanism carries lock_timeout to the migration's session; prisma_url.session_url: how it gets there."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from prisma_locks import (
    blocker_lines,
    blockers_sql,
    duration_ms,
    normalize_query,
    summarize_samples,
    timeout_mechanism,
    wait_for_blockers,
)
from prisma_url import session_url


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("UPDATE products SET name = 'Secret Honey' WHERE id = 1", "UPDATE products SET name = ? WHERE id = ?"),
        ("ALTER ROLE app PASSWORD 'hunter2-long'", "ALTER ROLE app PASSWORD ?"),
        ("SELECT E'it''s', $$body; with ; semis$$, $f$x$f$, 3.5e2, -7", "SELECT ?, ?, ?, ?, ?"),
        ("SELECT * FROM t2 WHERE c1 = 42", "SELECT * FROM t2 WHERE c1 = ?"),  # names keep their digits
        ("INSERT INTO t VALUES ('cut off by track_activity_query_size", "INSERT INTO t VALUES (?"),
        ("SELECT 1\n   FROM   t", "SELECT ? FROM t"),
        (None, ""),
    ],
)
def test_a_query_is_shown_without_its_literals(query, expected):
    assert normalize_query(query) == expected


def test_a_long_query_is_cut_to_80_characters():
    text = normalize_query("SELECT " + ", ".join(f"col{i}" for i in range(40)) + " FROM wide")
    assert len(text) == 80
    assert text.endswith("…")


SESSION = {
    "pid": 4242, "application_name": "report-job", "user": "app", "client_addr": "10.0.0.5",
    "state": "idle in transaction", "why": "lock", "xact_age_s": 73.2, "state_age_s": 70.1,
    "locks": "holds ROW EXCLUSIVE on public.orders", "query": "UPDATE orders SET note = 'a@b.gr' WHERE id = 9",
}  # fmt: skip


def test_one_line_per_blocker_names_pid_application_address_state_age_locks_and_query():
    lines = blocker_lines({"sessions": [SESSION], "replicas": []}, 30)
    assert lines == [
        "pid 4242 (report-job, user app, from 10.0.0.5): lock, idle in transaction, transaction open 73.2 s,"
        " holds ROW EXCLUSIVE on public.orders; query: UPDATE orders SET note = ? WHERE id = ?"
    ]


def test_a_session_another_role_cannot_see_is_still_named_by_its_lock():
    hidden = {"pid": 7, "application_name": "", "user": "postgres", "client_addr": "unknown",
              "state": "state hidden from app", "why": "lock", "xact_age_s": None, "state_age_s": None,
              "locks": "holds ACCESS SHARE on public.orders", "query": "<insufficient privilege>"}  # fmt: skip
    [line] = blocker_lines({"sessions": [hidden]}, 30)
    assert line.startswith("pid 7 ((no application_name), user postgres, from unknown): lock, state hidden from app,")
    assert "age hidden, holds ACCESS SHARE on public.orders" in line


def test_only_standbys_over_the_lag_budget_are_blockers():
    replicas = [
        {"pid": 1, "application_name": "replica-a", "client_addr": "10.0.0.7", "state": "streaming",
         "replay_lag_s": 45.0, "lagging": True},
        {"pid": 2, "application_name": "replica-b", "client_addr": "10.0.0.8", "state": "streaming",
         "replay_lag_s": 0.2, "lagging": False},
    ]  # fmt: skip
    assert blocker_lines({"sessions": [], "replicas": replicas}, 30) == [
        "standby pid 1 (replica-a, from 10.0.0.7, streaming): replay lag 45.0 s (over 30 s)"
    ]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_the_wait_reads_again_every_second_until_the_blocker_goes():
    clock = Clock()
    answers = iter([{"sessions": [SESSION]}] * 3 + [{"sessions": []}])
    found = wait_for_blockers(lambda sql: next(answers), ["public.orders"], 60, 30, 10, clock=clock, sleep=clock.sleep)
    assert found["lines"] == []
    assert found["reads"] == 4
    assert found["waited_s"] == 3.0


def test_the_wait_gives_up_after_its_seconds_and_without_a_wait_reads_once():
    clock = Clock()
    found = wait_for_blockers(lambda sql: {"sessions": [SESSION]}, [], 60, 30, 2.5, clock=clock, sleep=clock.sleep)
    assert len(found["lines"]) == 1
    assert found["waited_s"] == 2.5
    assert found["reads"] == 4  # at 0, 1, 2 and 2.5 s
    once = wait_for_blockers(lambda sql: {"sessions": [SESSION]}, [], 60, 30, 0, clock=clock, sleep=clock.sleep)
    assert once["reads"] == 1
    assert once["waited_s"] == 0


@pytest.mark.parametrize(("value", "ms"), [("5s", 5000), ("250ms", 250), ("2min", 120000), ("0", 0), ("1.5 s", 1500)])
def test_durations(value, ms):
    assert duration_ms(value) == ms


def test_a_duration_that_is_not_one_is_none():
    assert duration_ms("5 parsecs") is None


PLAIN = {"user": "app", "lock_timeout": "0", "statement_timeout": "0", "lock_timeout_ms": 0, "statement_timeout_ms": 0,
         "role_settings": []}  # fmt: skip
WITH_OPTIONS = {**PLAIN, "lock_timeout": "5s", "lock_timeout_ms": 5000}
ROLE = {**PLAIN, "lock_timeout": "3s", "lock_timeout_ms": 3000,
        "role_settings": [{"role": "app", "database": "shop", "setting": "lock_timeout=3s"}]}  # fmt: skip


def test_the_url_options_are_the_mechanism_when_the_server_applied_them():
    got = timeout_mechanism(WITH_OPTIONS, PLAIN, {"lock_timeout": "5s"}, pooled=False)
    assert got["mechanism"] == "url_options"
    assert got["in_force"] == {"lock_timeout": "5s", "statement_timeout": "0"}


def test_a_pooled_url_needs_the_role_setting():
    assert timeout_mechanism(WITH_OPTIONS, PLAIN, {"lock_timeout": "5s"}, pooled=True)["mechanism"] == "none"
    got = timeout_mechanism(None, ROLE, {"lock_timeout": "5s"}, pooled=True)
    assert got["mechanism"] == "role_setting"
    assert "lock_timeout=3s (app in shop)" in got["detail"]


def test_options_the_server_did_not_apply_and_no_role_setting_is_no_mechanism():
    got = timeout_mechanism(PLAIN, PLAIN, {"lock_timeout": "5s"}, pooled=False)
    assert got["mechanism"] == "none"
    assert "did not apply the URL's options" in got["detail"]


def test_a_migration_role_must_be_the_urls_role_and_have_the_setting():
    wrong = timeout_mechanism(WITH_OPTIONS, ROLE, {"lock_timeout": "5s"}, False, migration_role="migrator")
    assert wrong["mechanism"] == "none"
    assert "migration_role is migrator but the URL logs in as app" in wrong["detail"]
    unset = timeout_mechanism(WITH_OPTIONS, PLAIN, {"lock_timeout": "5s"}, False, migration_role="app")
    assert unset["mechanism"] == "none"
    assert "ALTER ROLE app SET lock_timeout = '5s'" in unset["detail"]
    assert timeout_mechanism(WITH_OPTIONS, ROLE, {"lock_timeout": "5s"}, False, "app")["mechanism"] == "role_setting"


URL = "postgresql://app:p%40ss%2Fw0rd@db.internal:5432/shop?schema=public&sslmode=require"


def test_the_session_url_adds_options_and_application_name_and_keeps_the_rest_byte_for_byte():
    url, app = session_url(URL, {"lock_timeout": "5s", "statement_timeout": ""}, "prisma-migrate-deploy")
    assert url.startswith("postgresql://app:p%40ss%2Fw0rd@db.internal:5432/shop?")
    query = parse_qs(urlsplit(url).query)
    assert query == {
        "schema": ["public"],
        "sslmode": ["require"],
        "options": ["-c lock_timeout=5s"],
        "application_name": ["prisma-migrate-deploy"],
    }
    assert app == "prisma-migrate-deploy"


def test_the_urls_own_options_and_application_name_are_kept_and_ours_come_last():
    url, app = session_url(URL + "&options=-c%20search_path%3Dx&application_name=shop-api", {"lock_timeout": "2s"}, "p")
    query = parse_qs(urlsplit(url).query)
    assert query["options"] == ["-c search_path=x -c lock_timeout=2s"]
    assert app == "shop-api"


def test_only_durations_enter_a_startup_option():
    with pytest.raises(ValueError, match="lock_timeout '5s -c role=postgres' is not a PostgreSQL duration"):
        session_url(URL, {"lock_timeout": "5s -c role=postgres"})


def sample(t, held=(), waiting=()):
    return {
        "t": t,
        "held": [{"pid": 9, "relation": r, "mode": m, "query": q} for r, m, q in held],
        "waiting": [{"pid": p, "relation": r} for p, r in waiting],
    }


ALTER = ("public.orders", "AccessExclusiveLock", "ALTER TABLE orders ADD COLUMN slow int DEFAULT 1")


def test_the_samples_say_how_long_each_lock_was_held_and_how_long_others_waited():
    samples = [sample(0.00, [ALTER]), sample(0.05, [ALTER], [(11, "public.orders")]),
               sample(0.10, [ALTER], [(11, "public.orders"), (12, "public.orders")]), sample(0.15),
               sample(0.20, [("public._prisma_migrations", "RowExclusiveLock", "UPDATE ...")])]  # fmt: skip
    got = summarize_samples(samples, 0.05)
    assert got["samples"] == 5
    assert got["locks"] == [
        {"relation": "public.orders", "mode": "ACCESS EXCLUSIVE", "blocks": "reads and writes", "held_s": 0.15,
         "statements": ["ALTER TABLE orders ADD COLUMN slow int DEFAULT ?"]}
    ]  # fmt: skip
    assert got["waits"] == [{"relation": "public.orders", "waited_s": 0.1, "max_waiters": 2, "waiter_s": 0.15}]
    assert got["blocked"] == [{"relation": "public.orders", "blocks": "reads and writes", "seconds": 0.15}]


def test_a_table_blocked_for_reads_and_writes_is_not_called_blocked_for_writes_by_a_briefer_lock():
    """Seen in a full run on a busy machine: the sampler also caught the foreign key migration's brief
    SHARE ROW EXCLUSIVE on orders, and the table's line said "writes ... blocked 1.01 s" for the
    ACCESS EXCLUSIVE that blocked reads too."""
    fk = ("public.orders", "ShareRowExclusiveLock", "ALTER TABLE order_items ADD CONSTRAINT f FOREIGN KEY")
    samples = [sample(0.00, [fk]), sample(0.05, [ALTER]), sample(0.10, [ALTER]), sample(0.15, [ALTER]), sample(0.20)]
    got = summarize_samples(samples, 0.05)
    assert [(lock["mode"], lock["held_s"]) for lock in got["locks"]] == [("ACCESS EXCLUSIVE", 0.15),
                                                                          ("SHARE ROW EXCLUSIVE", 0.05)]  # fmt: skip
    assert got["blocked"] == [{"relation": "public.orders", "blocks": "reads and writes", "seconds": 0.15}]
    # the other order: a long lock that blocks writes and a brief one that blocks reads too
    samples = [sample(0.00, [ALTER]), sample(0.05, [fk]), sample(0.10, [fk]), sample(0.15, [fk]), sample(0.20)]
    got = summarize_samples(samples, 0.05)
    assert got["blocked"] == [{"relation": "public.orders", "blocks": "reads and writes", "seconds": 0.15}]


def test_a_late_sample_does_not_stretch_a_lock_it_did_not_see():
    got = summarize_samples([sample(0.0, [ALTER]), sample(5.0)], 0.05)
    assert got["locks"][0]["held_s"] == 0.1  # at most twice the interval


def test_a_lock_that_blocks_nothing_is_listed_but_blocks_nobody():
    index = ("public.orders", "ShareUpdateExclusiveLock", "CREATE INDEX CONCURRENTLY o ON orders (a)")
    got = summarize_samples([sample(0.0, [index]), sample(0.05, [index])], 0.05)
    assert got["locks"][0]["mode"] == "SHARE UPDATE EXCLUSIVE"
    assert got["locks"][0]["blocks"] == "nothing"
    assert got["blocked"] == []


def test_a_session_this_role_cannot_see_counts_only_when_a_second_read_still_sees_it():
    hidden = {**SESSION, "pid": 7, "hidden": True, "xact_age_s": None, "state": "state hidden from app"}
    clock = Clock()
    brief = iter([{"sessions": [hidden]}, {"sessions": []}])  # an application statement that ended
    found = wait_for_blockers(lambda sql: next(brief), [], 60, 30, 0, clock=clock, sleep=clock.sleep)
    assert found["lines"] == []
    assert found["reads"] == 2
    stays = iter([{"sessions": [hidden]}, {"sessions": [hidden]}])  # an idle transaction holding its lock
    found = wait_for_blockers(lambda sql: next(stays), [], 60, 30, 0, clock=clock, sleep=clock.sleep)
    assert [line.split(" (")[0] for line in found["lines"]] == ["pid 7"]


def test_a_lock_holder_must_be_older_than_the_minimum_age_in_the_query():
    sql = blockers_sql(["public.orders"], 60, 30, min_lock_age=1.5)
    assert "a.xact_start < now() - make_interval(secs => 1.5)" in sql
    assert "'public.orders'" in sql
