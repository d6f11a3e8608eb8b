"""After a migration failed on real rows and the rollback the failure named: data as before."""

from conftest import BACKUP_DIR, FIXTURE_MIGRATIONS


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
    migrate, rollback = staging.reports[-2:]
    assert migrate["result"] == "failed"
    assert migrate["failed_migration"] == "20240205090000_add_producer_region_code"
    assert "rollback.yml" in migrate["next_step"]
    assert rollback["result"] == "restored"
    assert rollback["restored_snapshot"] == migrate["snapshot"]["path"]


def test_no_secret_in_any_file_or_output_the_runs_wrote(staging):
    assert staging.leaks() == []
