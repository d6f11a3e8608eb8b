from __future__ import annotations

from prisma import FilterModule


def test_filters_accept_text_or_a_registered_result():
    filters = FilterModule().filters()
    registered = {
        "stdout": "1 migration found in prisma/migrations\n",
        "stderr": "Database schema is up to date!\n",
        "rc": 0,
    }
    assert filters["prisma_status"](registered)["state"] == "up_to_date"
    assert filters["prisma_status"](registered, rc=1)["state"] == "error"
    assert filters["prisma_status"]("Following migration have not yet been applied:\n0_init\n", rc=1)["pending"] == [
        "0_init"
    ]
    assert (
        filters["prisma_deploy"]({"stdout": "No pending migrations to apply.\n", "stderr": "", "rc": 0})["result"]
        == "nothing_pending"
    )


def test_rollout_batches_are_the_canary_then_batches_of_the_size():
    batches = FilterModule().filters()["prisma_rollout_batches"]
    hosts = [f"t{i}" for i in range(1, 9)]
    assert batches(hosts, 4) == [["t1"], ["t2", "t3", "t4", "t5"], ["t6", "t7", "t8"]]
    assert batches(hosts, "3") == [["t1"], ["t2", "t3", "t4"], ["t5", "t6", "t7"], ["t8"]]
    assert batches(hosts, 1) == [[h] for h in hosts]
    assert batches(["only"], 4) == [["only"]]
    assert batches([], 4) == []


def test_a_bad_rollout_batch_size_is_one_clear_error():
    import pytest
    from ansible.errors import AnsibleFilterError

    batches = FilterModule().filters()["prisma_rollout_batches"]
    for bad in (0, -2, "two", None, ""):
        with pytest.raises(AnsibleFilterError, match="rollout_batch_size must be a whole number of targets, 1 or more"):
            batches(["a", "b"], bad)


def test_the_canary_goes_first_and_the_others_keep_their_order():
    filters = FilterModule().filters()
    hosts = ["t1", "t2", "t3", "t4", "t5"]
    batches = filters["prisma_rollout_batches"](hosts, 2, "t3")
    assert batches == [["t3"], ["t1", "t2"], ["t4", "t5"]]
    assert filters["prisma_rollout_before"](batches, "t3") == []
    assert filters["prisma_rollout_before"](batches, "t2") == ["t3"]
    assert filters["prisma_rollout_before"](batches, "t5") == ["t3", "t1", "t2"]
    assert filters["prisma_rollout_batches"](hosts, 2, "absent")[0] == ["t1"]


def test_a_rehearsal_is_kept_under_the_migrations_names_and_checksums_and_quoted_in_one_line():
    filters = FilterModule().filters()
    key = filters["prisma_rehearsal_key"]
    assert key({"b": "2", "a": "1"}) == key({"a": "1", "b": "2"})  # the order of the dict does not matter
    assert key({"a": "1"}) != key({"a": "2"})  # an edited migration is another rehearsal
    record = {
        "rehearsed_at": "2026-12-02T10:00:00Z", "host": "staging", "database": "shop", "migrate_deploy_s": 4.2,
        "locks_observed": {"blocked": [{"relation": "public.orders", "blocks": "writes", "seconds": 3.2}],
                           "waits": [{"relation": "public.orders", "waited_s": 2.9, "max_waiters": 14}]},
    }  # fmt: skip
    assert filters["prisma_rehearsal_text"](record) == (
        "rehearsed 2026-12-02T10:00:00Z on staging/shop: writes of public.orders blocked 3.2 s;"
        " 14 session(s) queued behind it on public.orders for 2.9 s (migrate deploy 4.2 s)"
    )
    assert filters["prisma_rehearsal_text"](None) == ""


def test_a_canary_blocking_more_than_half_again_its_rehearsal_is_named():
    over = FilterModule().filters()["prisma_canary_over"]
    rehearsal = {"rehearsed_at": "R", "locks_observed": {"blocked": [
        {"relation": "public.orders", "blocks": "writes", "seconds": 2.0},
        {"relation": "public.items", "blocks": "reads and writes", "seconds": 0.1}]}}  # fmt: skip
    canary = {"blocked": [
        {"relation": "public.orders", "blocks": "writes", "seconds": 3.1},  # +55 %
        {"relation": "public.items", "blocks": "reads and writes", "seconds": 0.3},  # x3, but 0.2 s: noise
        {"relation": "public.new", "blocks": "writes", "seconds": 0.9}]}  # fmt: skip
    assert over(canary, rehearsal) == [
        "writes of public.orders blocked 3.1 s on the canary, 2 s in the rehearsal of R",
        "writes of public.new blocked 0.9 s on the canary, 0 s in the rehearsal of R",
    ]
    assert over({"blocked": [{"relation": "public.orders", "blocks": "writes", "seconds": 2.9}]}, rehearsal) == []
    assert over(canary, None) == []
