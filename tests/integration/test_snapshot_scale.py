"""Snapshots at scale (issue 20): from 64 MiB the preflight measures what bounds the dump on the target
(the database's parallel read rate, the snapshot folder's write rate, each compression level's CPU cost),
the plan says how long the snapshot will take, a limit on it is refused before the gate, and the snapshot
uses the level the measurement chose (backup_compress: auto, the default)."""

from __future__ import annotations

import json
import re

import pytest
from playbook_target import PHRASE, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS

ROWS = 700_000  # about 100 MB of rows: over the 64 MiB from which the dump is measured


@pytest.fixture
def target(tmp_path, database):
    target = make_target(tmp_path, database)
    target.db.execute(
        'CREATE TABLE "events" (id bigint PRIMARY KEY, account int NOT NULL, body text NOT NULL);'
        f"INSERT INTO \"events\" SELECT g, g % 5000, md5(g::text) || ' order ' || (g % 977) || ' shipped to '"
        f" || md5((g % 313)::text) FROM generate_series(1, {ROWS}) g;"
        'ALTER TABLE "events" OWNER TO app;'
        'ANALYZE "events"'
    )
    return target


def test_the_dump_is_measured_estimated_limited_and_compressed_as_measured(target):
    before = target.table_digest()

    # a limit the estimate exceeds whatever this machine's speed: refused before the gate
    run = target.run({"confirm": PHRASE, "max_snapshot_seconds": 0.01})
    assert run.rc != 0
    message = run.report["message"]
    assert "max_snapshot_seconds=0.01" in message, message
    assert "Nothing was changed." in message
    assert "Use backup_method=restore_point" in message  # the method whose time does not grow with the database
    assert re.search(r"would take about [0-9.]+ s \([0-9]+ MB of rows at [0-9]+ MB/s, compression [0-9]", message), (
        message
    )
    assert run.report.get("snapshot") is None
    assert target.applied() == MIGRATIONS[:2]
    assert not target.backup_dir.exists() or not list(target.backup_dir.glob("*"))  # no probe file either

    # a level that is not one: one line, nothing changed
    run = target.run({"confirm": PHRASE, "backup_compress": "fast"})
    assert run.rc != 0
    assert "compress is 'fast': give auto or a level from 0 to 9" in run.report["message"]
    assert "Traceback" not in run.stdout + run.stderr
    assert target.applied() == MIGRATIONS[:2]

    # the default: measured in the preflight, the level it chose used by the dump, no second probe
    run = target.run({"confirm": PHRASE})
    assert run.rc == 0, run.stdout[-3000:]
    assert target.applied() == MIGRATIONS
    snapshot = run.report["snapshot"]
    limits = snapshot["limits"]
    assert limits["read_bytes_per_s"] > 0
    assert limits["write_bytes_per_s"] > 0
    assert limits["bound_bytes_per_s"] == min(limits["read_bytes_per_s"], limits["write_bytes_per_s"])
    assert sorted(limits["levels"], key=int) == ["0", "1", "3", "6", "9"]
    assert int(snapshot["compress"]) == limits["compress"]
    projected = limits["levels"][str(limits["compress"])]["projected_bytes_per_s"]
    assert projected >= 0.85 * limits["bound_bytes_per_s"]  # the level keeps the dump near the bound
    assert 50e6 < limits["copy_bytes"] < 250e6  # the rows' size, about 100 MB
    assert limits["dump_bytes_per_s"] > 0
    assert limits["ratio_to_bound"] > 0
    estimate = f"~{limits['estimate_s']} s estimated: {round(limits['copy_bytes'] / 1e6)} MB of rows"
    assert estimate in " ".join(run.stdout.split())
    manifest = json.loads(next(target.backup_dir.glob("*.manifest.json")).read_text())
    assert manifest["compress"] == limits["compress"]
    assert manifest["limits"]["read_bytes_per_s"] == limits["read_bytes_per_s"]
    # what pg_dump wrote is compressed at that level (directory format: .dat.gz per table unless 0)
    [folder] = [p for p in target.backup_dir.iterdir() if p.is_dir() and p.name.endswith(".dir")]
    data = [p.name for p in folder.iterdir() if p.name != "toc.dat"]
    assert data
    assert all(n.endswith(".gz") for n in data) == (limits["compress"] > 0), (limits["compress"], data)
    # the write probe left nothing behind
    assert not [p for p in target.backup_dir.iterdir() if "probe" in p.name]
    assert target.table_digest() != before  # migrated
    assert no_advisory_locks(target.db)
    assert_no_secret(run, target)
