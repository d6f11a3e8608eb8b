"""A fleet of tenant databases migrated as one rollout: one gate listing every
target, the canary alone first, then batches; the first failure stops everything
that has not started."""

from __future__ import annotations

import hashlib
import json

import pytest
from fleet import Fleet
from playbook_target import no_advisory_locks

ALL = [
    "20240105090000_init",
    "20240112090000_add_product_status",
    "20240120090000_backfill_product_slug",
    "20240201090000_add_product_name_index",
    "20240210090000_add_order_item_foreign_keys",
]
BEFORE = ALL[:2]
# An order line for a product that does not exist: the foreign key migration fails on it.
ORPHAN = "INSERT INTO order_items (order_id, product_id, quantity) VALUES (1, 999, 1)"


@pytest.fixture
def make_fleet(pg_cluster, tmp_path):
    made = []

    def make(size: int) -> Fleet:
        made.append(Fleet(pg_cluster, tmp_path, size=size))
        return made[-1]

    yield make
    for f in made:
        for db in f.databases.values():
            pg_cluster.drop_database(db.name)


@pytest.fixture
def fleet(make_fleet):
    """6 databases in one throwaway cluster: the canary, a full batch of 4 (the default size) and a
    batch after it. `make bench-fleet` times the fleet of 8 the rollout was specified with."""
    return make_fleet(6)


@pytest.fixture
def small_fleet(make_fleet):
    """Enough targets for a canary, a batch of 2 and one more, at half the cost."""
    return make_fleet(4)


def first_migration_started(db) -> str:
    return db.query("SELECT min(started_at)::text FROM _prisma_migrations WHERE migration_name = %s", (ALL[2],))[0][0]


def last_migration_finished(db) -> str:
    return db.query("SELECT max(finished_at)::text FROM _prisma_migrations")[0][0]


def test_all_targets_migrate_canary_first_with_one_gate(fleet):
    run = fleet.run()

    assert run.rc == 0, run.stdout[-4000:]
    for host in fleet.hosts:
        assert fleet.applied(host) == ALL, host
        assert len(fleet.snapshots(host)) == 1, host
        assert run.reports[host]["result"] == "migrated", host
        assert run.reports[host]["applied"] == ALL[2:], host
        assert no_advisory_locks(fleet.databases[host])
    # One gate: the plan of every target shown once, in one task, before anything changed.
    assert run.stdout.count("ROLLOUT PLAN: 6 of 6 target(s) to migrate") == 1
    for host in fleet.hosts:
        assert run.stdout.count(f"MIGRATION PLAN for {host}\n") + run.stdout.count(f"MIGRATION PLAN for {host}'") == 1
    flat = " ".join(run.stdout.split())  # the yaml callback folds long lines
    assert "batch 1 (canary): tenant-1; batch 2: tenant-2, tenant-3, tenant-4, tenant-5; batch 3: tenant-6" in flat
    # The canary finished before any other target started: read from the databases themselves.
    canary_done = last_migration_finished(fleet.databases["tenant-1"])
    assert all(first_migration_started(fleet.databases[h]) > canary_done for h in fleet.hosts[1:])
    # Batch 2 finished before batch 3 started.
    batch2_done = max(last_migration_finished(fleet.databases[h]) for h in fleet.hosts[1:5])
    assert all(first_migration_started(fleet.databases[h]) > batch2_done for h in fleet.hosts[5:])
    # One rollout summary, complete.
    assert run.rollout["result"] == "complete"
    assert run.rollout["counts"] == {"migrated": 6}
    assert [row["target"] for row in run.rollout["targets"]] == fleet.hosts
    assert run.rollout["batches"] == [fleet.hosts[:1], fleet.hosts[1:5], fleet.hosts[5:]]
    summary = fleet.report_dir / f"{run.rollout['run_id']}-rollout.md"
    assert "| tenant-6 |" in summary.read_text()
    for db in fleet.databases.values():
        assert db.password not in run.stdout
        for path in fleet.report_dir.iterdir():
            assert db.password not in path.read_text()


def test_a_failing_canary_leaves_every_other_target_untouched(small_fleet):
    """Every target is read before the gate; after the canary fails, no other is touched (4 targets in batches
    of 2: the canary, then two batches that never start, prove it as well as 8 do, at half the cost)."""
    fleet = small_fleet
    fleet.databases["tenant-1"].execute(ORPHAN)
    before = {host: fleet.digest(host) for host in fleet.hosts}

    run = fleet.run({"rollout_batch_size": 2})

    assert run.rc != 0
    canary = run.reports["tenant-1"]
    assert canary["result"] == "failed"
    assert canary["failed_migration"] == ALL[4]
    assert "playbooks/rollback.yml -l tenant-1" in canary["next_step"]
    assert sorted(run.reports) == ["tenant-1"]  # nobody else even got a report
    for host in fleet.hosts[1:]:
        assert fleet.applied(host) == BEFORE, host
        assert fleet.digest(host) == before[host], host
        assert fleet.snapshots(host) == [], host
        assert no_advisory_locks(fleet.databases[host])
    assert run.rollout["result"] == "stopped"
    assert run.rollout["counts"] == {"failed": 1, "not_started": 3}
    assert (
        "The rollout stopped at the first failure"
        in (fleet.report_dir / f"{run.rollout['run_id']}-rollout.md").read_text()
    )


def test_a_failure_in_a_batch_stops_the_batches_after_it(small_fleet):
    fleet = small_fleet
    fleet.databases["tenant-3"].execute(ORPHAN)
    before = {host: fleet.digest(host) for host in fleet.hosts}

    run = fleet.run({"rollout_batch_size": 2})

    assert run.rc != 0
    # canary, then batch [tenant-2, tenant-3]: tenant-2 finishes its work, tenant-3 fails
    assert run.reports["tenant-1"]["result"] == "migrated"
    assert run.reports["tenant-2"]["result"] == "migrated"
    assert run.reports["tenant-3"]["result"] == "failed"
    assert fleet.applied("tenant-2") == ALL
    for host in fleet.hosts[3:]:
        assert fleet.applied(host) == BEFORE, host
        assert fleet.digest(host) == before[host], host
    assert run.rollout["batches"] == [["tenant-1"], ["tenant-2", "tenant-3"], ["tenant-4"]]
    assert run.rollout["counts"] == {"migrated": 2, "failed": 1, "not_started": 1}


def test_a_wrong_phrase_stops_the_whole_fleet_at_the_gate(make_fleet):
    """Two targets: the gate is one for the whole fleet, whatever its size (8 in the first test)."""
    fleet = make_fleet(2)
    before = {host: fleet.digest(host) for host in fleet.hosts}

    run = fleet.run(confirm="dixis-prod-ok")

    assert run.rc != 0
    assert "The answer is not the confirmation phrase" in run.stdout
    for host in fleet.hosts:
        assert fleet.digest(host) == before[host], host
        assert fleet.snapshots(host) == [], host
        assert run.reports[host]["result"] == "failed"
    assert run.rollout["counts"] == {"failed": 2}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"rollout_batch_size": 0}, "rollout_batch_size must be a whole number of targets, 1 or more"),
        ({"rollout_batch_size": "two"}, "rollout_batch_size must be a whole number of targets, 1 or more"),
    ],
)
def test_a_bad_batch_size_is_refused_before_anything(small_fleet, extra, message):
    fleet = small_fleet
    before = {host: fleet.digest(host) for host in fleet.hosts}

    run = fleet.run(extra)

    assert run.rc != 0
    assert message in run.stdout
    assert "Traceback" not in run.stdout
    assert all(fleet.digest(host) == before[host] for host in fleet.hosts)


def test_a_batch_size_in_the_inventory_is_refused_before_anything(small_fleet):
    fleet = small_fleet
    """Ansible sizes batches before it reads the inventory: a size there would be shown and not used."""
    before = {host: fleet.digest(host) for host in fleet.hosts}

    run = fleet.run(inventory_vars={"rollout_batch_size": 2})

    assert run.rc != 0
    assert "rollout_batch_size=2 is set in the inventory" in run.stdout
    assert "-e rollout_batch_size=2" in run.stdout
    assert all(fleet.digest(host) == before[host] for host in fleet.hosts)
    assert all(fleet.snapshots(host) == [] for host in fleet.hosts)


def test_the_canary_is_the_first_target_with_something_to_migrate(make_fleet):
    """On a re-run after a failure the first targets are already migrated: they must not be the canary."""
    fleet = make_fleet(3)
    assert fleet.app.prisma("migrate", "deploy", database_url=fleet.databases["tenant-1"].url()).rc == 0

    run = fleet.run({"rollout_batch_size": 2})

    assert run.rc == 0, run.stdout[-3000:]
    assert run.rollout["batches"] == [["tenant-2"], ["tenant-1", "tenant-3"]]
    assert run.reports["tenant-1"]["result"] == "nothing_to_do"
    assert first_migration_started(fleet.databases["tenant-3"]) > last_migration_finished(fleet.databases["tenant-2"])
    assert run.rollout["counts"] == {"migrated": 2, "nothing_to_do": 1}


# A column whose volatile default sleeps 1 s per row: ACCESS EXCLUSIVE on orders (one row) for about a second.
SLOW = (
    "20240302090000_slow_column",
    'CREATE FUNCTION "slow_default"() RETURNS integer LANGUAGE sql AS $$ SELECT 1 FROM pg_sleep(1) $$;\n'
    'ALTER TABLE "orders" ADD COLUMN "slow" INTEGER NOT NULL DEFAULT "slow_default"();\n',
)


def test_a_canary_blocking_longer_than_its_rehearsal_stops_the_rollout(make_fleet):
    """The rehearsal of these migrations saw no table blocked (a record as rehearse.yml keeps it); the
    canary blocks orders for about a second: more than +50 % and more than 0.5 s, so the rollout stops
    before the next batch, which is untouched, and nothing tells the operator to restore the canary."""
    fleet = make_fleet(2)
    fleet.app.add_migration(*SLOW)
    checksums = {
        name: hashlib.sha256(
            (fleet.app.path / "prisma" / "migrations" / name / "migration.sql").read_bytes()
        ).hexdigest()
        for name in [*ALL[2:], SLOW[0]]
    }
    key = hashlib.sha256("\n".join(f"{n}:{c}" for n, c in sorted(checksums.items())).encode()).hexdigest()
    kept = fleet.report_dir / "rehearsals" / f"{key}.json"
    kept.parent.mkdir(parents=True)
    kept.write_text(json.dumps({
        "rehearsed_at": "2026-12-01T10:00:00Z", "host": "staging", "database": "shop", "migrations": checksums,
        "locks_observed": {"locks": [], "waits": [], "blocked": [], "samples": 40, "interval_s": 0.05},
    }))  # fmt: skip
    before = fleet.digest("tenant-2")

    run = fleet.run()

    assert run.rc != 0
    flat = " ".join(run.stdout.split())
    assert "rehearsal: rehearsed 2026-12-01T10:00:00Z on staging/shop" in flat  # the plan quoted it
    assert "The canary tenant-1 migrated (its report is written), but reads and writes of public.orders blocked" in flat
    assert "0 s in the rehearsal of 2026-12-01T10:00:00Z (over +50 %): the rollout stops before the next batch" in flat
    assert run.reports["tenant-1"]["result"] == "migrated"
    assert "rollback.yml" not in flat
    assert fleet.applied("tenant-1") == [*ALL, SLOW[0]]
    assert fleet.applied("tenant-2") == BEFORE
    assert fleet.digest("tenant-2") == before
    assert fleet.snapshots("tenant-2") == []
