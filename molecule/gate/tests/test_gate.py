"""After four refused runs: not a byte changed on either container."""

from conftest import BACKUP_DIR, FIXTURE_MIGRATIONS

REFUSALS = ["no-phrase", "wrong-phrase", "no-secret", "unwritable-snapshot-folder"]


def test_database_is_untouched(staging):
    assert staging.digest() == staging.before
    assert staging.migrations() == [(name, True, False) for name in FIXTURE_MIGRATIONS[:2]]
    sessions = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'prisma%'"
    assert staging.psql(sessions) == "0"


def test_app_host_is_untouched(staging):
    assert staging.changed_app_files() == []  # no prisma generate, no edits
    assert staging.app.file(BACKUP_DIR).is_directory
    assert staging.app.check_output("find %s -mindepth 1", BACKUP_DIR) == ""  # no snapshot, no lock state
    assert not staging.app.file("/var/backups/prisma-root-only").exists


def test_every_refusal_is_reported_as_changing_nothing(staging):
    reports = staging.reports
    assert len(reports) == len(REFUSALS)
    for report in reports:
        assert report["result"] == "failed"
        assert report["snapshot"] is None
        assert report["next_step"].startswith("Nothing was changed"), report["next_step"]


def test_no_secret_in_any_output(staging):
    runs = sorted(p.name for p in (staging.ephemeral / "runs").iterdir())
    assert runs == sorted(f"{name}.log" for name in REFUSALS)
    assert staging.leaks() == []
