from __future__ import annotations

from prisma_snapshots import AUTO_DIRECTORY_MIN_BYTES, choose_format

BIG, SMALL = AUTO_DIRECTORY_MIN_BYTES, AUTO_DIRECTORY_MIN_BYTES - 1


def test_auto_picks_the_directory_format_for_big_databases_on_multi_core_hosts():
    assert choose_format("auto", 1, BIG, 2) == ("directory", 2)
    assert choose_format("auto", 1, 10 * BIG, 16) == ("directory", 4)  # at most 4 jobs unless told
    assert choose_format("auto", 6, BIG, 16) == ("directory", 6)  # backup_jobs wins


def test_auto_keeps_one_file_for_small_databases_or_one_core():
    assert choose_format("auto", 1, SMALL, 8) == ("custom", 1)
    assert choose_format("auto", 4, BIG, 1) == ("custom", 1)
    assert choose_format("auto", 1, BIG, None) == ("custom", 1)


def test_an_explicit_format_is_kept():
    assert choose_format("custom", 1, 10 * BIG, 8) == ("custom", 1)
    assert choose_format("directory", 3, 1, 1) == ("directory", 3)


# --- Issue 16, class G: retention and latest are per database AND schema. ---

import json  # noqa: E402

import pytest  # noqa: E402
from prisma_snapshots import apply_retention, manifests, same_target, snapshot_key  # noqa: E402

BASE = {"host": "db.internal", "port": 5432, "database": "shop"}


def test_the_key_is_host_port_database_and_schema_with_public_for_old_manifests():
    assert snapshot_key({**BASE, "schema": "tenant_a"}) == ("db.internal", 5432, "shop", "tenant_a")
    assert snapshot_key(BASE) == ("db.internal", 5432, "shop", "public")  # a manifest from before the schema
    assert snapshot_key({**BASE, "host": "DB.Internal", "port": "5432"}) == snapshot_key(BASE)


@pytest.mark.parametrize(
    ("change", "same"),
    [
        ({}, True),
        ({"schema": "public"}, True),  # old manifest (no schema) and a public target
        ({"schema": "tenant_b"}, False),
        ({"database": "shop2"}, False),
        ({"host": "db2.internal"}, False),
        ({"port": 6543}, False),
        ({"system_identifier": "7300000000000000002"}, True),  # only one side knows it
    ],
)
def test_same_target(change, same):
    assert same_target(BASE, {**BASE, **change}) is same
    assert same_target({**BASE, **change}, BASE) is same


def test_the_system_identifier_counts_when_both_have_it():
    a = {**BASE, "schema": "t", "system_identifier": "7300000000000000001"}
    assert same_target(a, dict(a))
    assert not same_target(a, {**a, "system_identifier": "7300000000000000002"})


def _snapshot(folder, name, started, **fields):
    (folder / name).write_bytes(b"dump")
    manifest = {**BASE, "file": name, "started_at": started, "purpose": "pre_migration", **fields}
    (folder / (name + ".manifest.json")).write_text(json.dumps(manifest))
    return manifest


def test_six_tenants_with_keep_5_keep_each_tenant_s_snapshot(tmp_path):
    for i in range(1, 7):
        _snapshot(tmp_path, f"shop.t{i}.dump", f"2026-01-01T00:00:0{i}Z", schema=f"t{i}")
    for i in range(1, 7):
        target = {**BASE, "schema": f"t{i}"}
        assert apply_retention(str(tmp_path), target, 5, f"shop.t{i}.dump") == []
    assert len(manifests(str(tmp_path))) == 6


def test_retention_counts_only_the_same_schema_and_keeps_others(tmp_path):
    for n in range(3):
        _snapshot(tmp_path, f"a{n}.dump", f"2026-01-01T00:00:0{n}Z", schema="tenant_a")
        _snapshot(tmp_path, f"b{n}.dump", f"2026-01-01T00:01:0{n}Z", schema="tenant_b")
    _snapshot(tmp_path, "old.dump", "2025-01-01T00:00:00Z")  # an old manifest without a schema: public
    removed = apply_retention(str(tmp_path), {**BASE, "schema": "tenant_a"}, 1, "a2.dump")
    assert sorted(removed) == ["a0.dump", "a1.dump"]
    left = sorted(data["file"] for _path, data in manifests(str(tmp_path)))
    assert left == ["a2.dump", "b0.dump", "b1.dump", "b2.dump", "old.dump"]
    assert apply_retention(str(tmp_path), {**BASE, "schema": "public"}, 1, "new.dump") == []
    assert apply_retention(str(tmp_path), BASE, 1, "none") == []  # the public one is the newest of its own


def test_retention_spares_another_cluster_behind_the_same_address(tmp_path):
    _snapshot(tmp_path, "x0.dump", "2026-01-01T00:00:00Z", schema="t", system_identifier="1")
    _snapshot(tmp_path, "x1.dump", "2026-01-01T00:00:01Z", schema="t", system_identifier="2")
    new = _snapshot(tmp_path, "x2.dump", "2026-01-01T00:00:02Z", schema="t", system_identifier="2")
    assert apply_retention(str(tmp_path), new, 1, "x2.dump") == ["x1.dump"]
    assert (tmp_path / "x0.dump").exists()


def test_restore_point_records_and_dumps_are_kept_apart(tmp_path):
    # five restore points after two dumps: the dumps stay (they are what a rehearsal restores)
    for n in range(2):
        _snapshot(tmp_path, f"d{n}.dump", f"2026-01-01T00:00:0{n}Z")
    for n in range(5):
        point = _snapshot(tmp_path, f"p{n}.restore_point", f"2026-01-02T00:00:0{n}Z", method="restore_point")
        assert apply_retention(str(tmp_path), point, 2, f"p{n}.restore_point") == (
            [f"p{n - 2}.restore_point"] if n >= 2 else []
        )
    dump = _snapshot(tmp_path, "d2.dump", "2026-01-03T00:00:00Z")
    assert apply_retention(str(tmp_path), dump, 2, "d2.dump") == ["d0.dump"]
    left = sorted(data["file"] for _path, data in manifests(str(tmp_path)))
    assert left == ["d1.dump", "d2.dump", "p3.restore_point", "p4.restore_point"]
