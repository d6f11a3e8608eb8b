"""Four runs the gate refused changed nothing; then a migration failed on real rows, and the rollback the
failure named brought the data back as before."""

import json

from conftest import BACKUP_DIR, FIXTURE_MIGRATIONS

REFUSALS = ["no-phrase", "wrong-phrase", "no-secret", "unwritable-snapshot-folder"]


def after_refusals(staging, host: str):
    """What converge recorded between the refusals and the failing run."""
    return json.loads((staging.ephemeral / "build" / f"after_refusals_{host}.json").read_text())


def test_the_refusals_left_the_database_as_it_was(staging):
    after = after_refusals(staging, "db")
    assert after["digest"] == staging.before  # every table, _prisma_migrations included
    assert after["prisma_sessions"] == 0


def test_the_refusals_left_the_app_host_as_it_was(staging):
    # No file of the app changed after shipping (not even prisma generate's), no snapshot, no lock state,
    # and the folder deploy cannot create was not created.
    assert after_refusals(staging, "app") == []


def test_every_refusal_is_reported_as_changing_nothing(staging):
    refused = staging.reports[: len(REFUSALS)]
    assert [r["run_id"] for r in refused] == REFUSALS
    for report in refused:
        assert report["result"] == "failed"
        assert report["snapshot"] is None
        assert report["next_step"].startswith("Nothing was changed"), report["next_step"]


def test_database_is_identical_to_before_the_run(staging):
    # Every table, _prisma_migrations included: same rows, same content.
    assert staging.digest() == staging.before


def test_partial_changes_of_the_failed_migration_are_gone(staging):
    assert staging.migrations() == [(name, True, False) for name in FIXTURE_MIGRATIONS[:2]]
    column = (
        "SELECT count(*) FROM information_schema.columns WHERE table_name = 'producers' AND column_name = 'region_code'"
    )
    assert staging.psql(column) == "0"
    assert staging.psql("SELECT count(*) FROM pg_indexes WHERE indexname = 'products_slug_key'") == "0"


def test_both_snapshots_stay_on_the_app_host(staging):
    # The one taken before the migration, and the safety one of the failed state.
    snapshots = staging.snapshots(staging.app)
    assert len(snapshots) == 2, snapshots
    for name in snapshots:
        snap = staging.app.file(f"{BACKUP_DIR}/{name}")
        assert (snap.mode, snap.user) == (0o600, "deploy"), name


def test_reports_tell_the_failure_and_the_restore(staging):
    assert len(staging.reports) == len(REFUSALS) + 2
    migrate, rollback = staging.reports[-2:]
    assert migrate["result"] == "failed"
    assert migrate["failed_migration"] == "20240205090000_add_producer_region_code"
    assert "rollback.yml" in migrate["next_step"]
    assert rollback["result"] == "restored"
    assert rollback["restored_snapshot"] == migrate["snapshot"]["path"]


def test_no_secret_in_any_file_or_output_the_runs_wrote(staging):
    runs = sorted(p.name for p in (staging.ephemeral / "runs").iterdir())
    assert runs == sorted(f"{name}.log" for name in [*REFUSALS, "migrate", "rollback"])
    assert staging.leaks() == []
