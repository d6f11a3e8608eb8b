"""Issue 20: what proves a restore point can be restored - the server's archiver, a switched segment seen
archived, and pgBackRest's own account of its stanza (a real `pgbackrest info --output=json` of 2.45)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from prisma_archive import (
    ArchiveProblem,
    InfoProblem,
    archived,
    check_stanza,
    lsn_int,
    restore_argv,
    state_problems,
    switch_and_wait,
)

INFO = (Path(__file__).parent / "data" / "pgbackrest" / "info-2.45.json").read_text()
SYSTEM_ID = "7714995479883004759"
HEALTHY = {
    "archive_mode": "on",
    "in_recovery": False,
    "user": "app",
    "system_identifier": "7714995479883004759",
    "can_switch_wal": True,
    "can_create_restore_point": True,
    "archiver": {"last_archived_wal": "000000010000000000000004", "last_archived_at": "2026-12-03T08:42:51Z",
                 "age_s": 12.0, "failed_count": 0, "failing": False},
}  # fmt: skip


def info_with(**changes) -> str:
    data = json.loads(INFO)
    for key, value in changes.items():
        data[0][key] = value
    return json.dumps(data)


def test_lsns_and_segments_compare_as_the_server_orders_them():
    assert lsn_int("0/3000050") < lsn_int("0/10000000") < lsn_int("1/0")
    assert archived("000000010000000000000005", "000000010000000000000004")
    assert archived("000000010000000000000004", "000000010000000000000004")
    assert not archived("000000010000000000000003", "000000010000000000000004")
    assert archived("000000020000000000000001", "000000010000000000000004")  # a later timeline
    assert not archived("00000002.history", "000000010000000000000004")
    assert not archived(None, "000000010000000000000004")


def test_a_healthy_archive_has_no_problem():
    assert state_problems(HEALTHY, 300, "db:5432") == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"archive_mode": "off"}, "archive_mode is off on db:5432"),
        ({"in_recovery": True}, "is a standby"),
        ({"can_switch_wal": False}, "GRANT EXECUTE ON FUNCTION pg_switch_wal() TO app"),
        (
            {"archiver": {**HEALTHY["archiver"], "failing": True, "last_failed_wal": "000000010000000000000005"}},
            "the archiver is failing on db:5432: WAL 000000010000000000000005",
        ),
        ({"archiver": {**HEALTHY["archiver"], "age_s": 900.0}}, "last success on db:5432 was 900 s ago"),
        ({"archiver": {"last_archived_at": None, "failing": False}}, "has never archived"),
        ({"system_identifier": None}, "cannot read the cluster's system identifier (pg_control_system()), so the"),
    ],
)
def test_each_reason_not_to_trust_the_archive_is_one_sentence_saying_what_to_do(change, expected):
    problems = state_problems({**HEALTHY, **change}, 300, "db:5432")
    assert len(problems) == 1
    assert expected in problems[0], problems


def test_a_switched_segment_is_awaited_until_archived_and_refused_after_the_timeout():
    answers = iter(
        [{"last_archived_wal": "000000010000000000000003"}, {"last_archived_wal": "000000010000000000000004"}]
    )
    clock = iter(range(100))

    def query(sql):
        return "000000010000000000000004" if "pg_walfile_name(pg_switch_wal())" in sql else next(answers)

    done = switch_and_wait(query, 60, "db", clock=lambda: next(clock), sleep=lambda s: None)
    assert done["segment"] == "000000010000000000000004"

    def stuck(sql):
        if "pg_walfile_name(pg_switch_wal())" in sql:
            return "000000010000000000000009"
        return {"last_archived_wal": "000000010000000000000008", "last_failed_wal": "000000010000000000000009",
                "last_failed_at": "2026-12-03T08:00:00Z"}  # fmt: skip

    clock = iter(range(0, 1000, 10))
    with pytest.raises(
        ArchiveProblem, match="000000010000000000000009 was not archived within 30 s on db .last failure"
    ):
        switch_and_wait(stuck, 30, "db", clock=lambda: next(clock), sleep=lambda s: None)


def test_the_real_stanza_is_usable_and_names_the_backup_before_a_restore_point():
    summary = check_stanza(INFO, "main", SYSTEM_ID, "000000010000000000000003", "0/4422138", 1)
    assert summary["status"] == "ok"
    assert summary["full_backups"] == 1
    assert summary["archive_max"] == "000000010000000000000003"
    assert summary["restore_set"]["label"] == "20261203-084247F"
    assert summary["latest_backup"]["size_bytes"] == 22992346


@pytest.mark.parametrize(
    ("info", "args", "expected"),
    [
        (INFO, ("other", SYSTEM_ID), "knows no stanza 'other'"),
        (info_with(status={"code": 1, "message": "missing stanza path"}), ("main", SYSTEM_ID), "missing stanza path"),
        (INFO, ("main", "42"), "backs up another cluster"),
        (info_with(backup=[]), ("main", SYSTEM_ID), "no full backup"),
        (INFO, ("main", SYSTEM_ID, "000000010000000000000009"), "archives somewhere else than this repository"),
        (INFO, ("main", SYSTEM_ID, None, "0/2000000", 1), "no backup on timeline 1 that ended before LSN 0/2000000"),
        (INFO, ("main", SYSTEM_ID, None, None, 2), "no backup on timeline 2: after a point-in-time restore, take a"),
        (INFO, ("main", SYSTEM_ID, None, "not-an-lsn", 1), "lacks what this check reads"),
        ("ERROR: [055]", ("main", SYSTEM_ID), "not JSON"),
    ],
)
def test_a_stanza_that_cannot_restore_this_cluster_is_refused_in_one_sentence(info, args, expected):
    with pytest.raises(InfoProblem, match=expected):
        check_stanza(info, *args)


def test_a_failed_backup_does_not_count():
    data = json.loads(INFO)
    data[0]["backup"][0]["error"] = True
    with pytest.raises(InfoProblem, match="no full backup"):
        check_stanza(json.dumps(data), "main", SYSTEM_ID)
    assert copy.deepcopy(data) == data


def test_the_restore_command_targets_the_point_on_its_timeline_from_the_chosen_backup():
    argv = restore_argv(["sudo", "-u", "postgres", "pgbackrest"], "main", "prisma-X", 3, "20261203-084247F")
    assert argv == [
        "sudo", "-u", "postgres", "pgbackrest", "--stanza=main", "--delta", "--type=name", "--target=prisma-X",
        "--target-timeline=3", "--target-action=promote", "--set=20261203-084247F", "restore",
    ]  # fmt: skip


def test_a_backup_of_an_earlier_timeline_is_never_chosen_it_may_be_off_the_points_history():
    # the sequence "rollback to a point (timeline 2), migrate again": a timeline-1 backup taken before the
    # rollback, after the fork, ended at a lower LSN than the new point but is not on timeline 2's history
    data = json.loads(INFO)
    old = copy.deepcopy(data[0]["backup"][0])
    old.update(label="20261203-090000F", lsn={"start": "0/8000028", "stop": "0/9000050"},
               archive={"start": "000000010000000000000008", "stop": "000000010000000000000009"},
               timestamp={"start": 1796290000, "stop": 1796290010})  # fmt: skip
    new = copy.deepcopy(old)
    new.update(label="20261203-100000F", lsn={"start": "0/5000028", "stop": "0/6000050"},
               archive={"start": "000000020000000000000005", "stop": "000000020000000000000006"},
               timestamp={"start": 1796293600, "stop": 1796293610})  # fmt: skip
    data[0]["backup"] += [old, new]
    data[0]["archive"][0]["max"] = "00000002000000000000000A"
    summary = check_stanza(json.dumps(data), "main", SYSTEM_ID, None, "0/A000100", 2)
    assert summary["restore_set"]["label"] == "20261203-100000F"
