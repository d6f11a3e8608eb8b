"""After migrate.yml (twice): the release is applied, the rows survived, the run left its traces."""

from conftest import BACKUP_DIR, FIXTURE_MIGRATIONS


def test_every_migration_is_applied_once(staging):
    assert staging.migrations() == [(name, True, False) for name in FIXTURE_MIGRATIONS]


def test_rows_survived_and_were_backfilled(staging):
    before, after = staging.before, staging.digest()
    # The release does not touch these tables: every row is as it was.
    for table in ("order_items", "orders", "producers"):
        assert after[table] == before[table], table
    # products gained slug; every other column of every row is as it was.
    old_columns = "SELECT id, producer_id, name, price_cents, created_at, status FROM products"
    assert staging.fingerprint(old_columns) == before["products"]
    assert staging.psql("SELECT slug FROM products WHERE name = 'Thyme Honey 450g'") == "thyme-honey-450g-1"
    assert staging.psql("SELECT count(*) FROM products WHERE slug IS NULL") == "0"
    # The new foreign keys hold on the old rows.
    assert (
        staging.psql("SELECT count(*) FROM order_items i LEFT JOIN orders o ON o.id = i.order_id WHERE o.id IS NULL")
        == "0"
    )


def test_snapshot_is_on_the_app_host_private_to_deploy(staging):
    snapshots = staging.snapshots(staging.app)
    assert len(snapshots) == 1, snapshots
    snap = staging.app.file(f"{BACKUP_DIR}/{snapshots[0]}")
    assert (snap.mode, snap.user, snap.group) == (0o600, "deploy", "deploy")
    folder = staging.app.file(BACKUP_DIR)
    assert (folder.mode, folder.user) == (0o700, "deploy")
    # pg_restore on the app host can read it: a real archive of app_staging.
    listing = staging.app.run("pg_restore --list %s", snap.path)
    assert listing.rc == 0, listing.stderr
    assert "TABLE DATA public products" in listing.stdout
    assert not staging.db.file(BACKUP_DIR).exists


def test_reports_tell_both_runs(staging):
    first, second = staging.reports[-2:]
    assert first["result"] == "migrated"
    assert first["applied"] == FIXTURE_MIGRATIONS[2:]
    assert second["result"] == "nothing_to_do"


def test_the_staging_app_runs_prisma_7_on_a_node_that_fits(staging):
    """Prisma 7 is the primary target (issue 17): the staging app runs the Prisma 7 fixture on the
    controller's Node (Debian 12's is 18.20, older than Prisma 7 accepts)."""
    first, second = staging.reports[-2:]
    assert first["prisma_version"].startswith("7."), first["prisma_version"]
    node = staging.app.run("node --version")
    assert node.rc == 0, node.stderr
    major, minor = (int(part) for part in node.stdout.strip().lstrip("v").split(".")[:2])
    assert (major == 20 and minor >= 19) or (major == 22 and minor >= 12) or major >= 24, node.stdout


def test_no_secret_in_any_file_or_output_the_runs_wrote(staging):
    assert staging.leaks() == []
