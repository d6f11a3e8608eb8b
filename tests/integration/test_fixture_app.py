"""The fixture Prisma app really migrates a real PostgreSQL (issue #2)."""

from __future__ import annotations

import hashlib

import pytest
from prismaapp import MIGRATIONS

# Also on Prisma 6.19.3: both fixtures validate, generate and really migrate offline.


@pytest.mark.prisma6
def test_validate_and_generate_work_offline(prisma_app, database):
    res = prisma_app.prisma("validate", database_url=database.url())
    assert res.rc == 0, res.output
    assert "is valid" in res.stdout
    res = prisma_app.prisma("generate", database_url=database.url())
    assert res.rc == 0, res.output
    assert "Generated Prisma Client" in res.stdout


@pytest.mark.prisma6
def test_deploy_records_every_migration_in_the_database(prisma_app, database):
    before = prisma_app.prisma("migrate", "status", database_url=database.url())
    assert before.rc == 1, before.output
    assert "Following migrations have not yet been applied" in before.stdout

    res = prisma_app.prisma("migrate", "deploy", database_url=database.url())
    assert res.rc == 0, res.output
    assert "All migrations have been successfully applied." in res.stdout

    rows = database.query(
        "SELECT migration_name, checksum, finished_at IS NOT NULL, rolled_back_at IS NULL, applied_steps_count"
        " FROM _prisma_migrations ORDER BY migration_name"
    )
    assert [r[0] for r in rows] == MIGRATIONS
    for name, checksum, finished, not_rolled_back, steps in rows:
        sql = (prisma_app.migrations_dir / name / "migration.sql").read_bytes()
        assert checksum == hashlib.sha256(sql).hexdigest(), name
        assert (finished, not_rolled_back, steps) == (True, True, 1), name

    tables = {r[0] for r in database.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"producers", "products", "orders", "order_items", "_prisma_migrations"} <= tables

    after = prisma_app.prisma("migrate", "status", database_url=database.url())
    assert after.rc == 0, after.output
    assert "Database schema is up to date!" in after.stdout


def test_backfill_migration_fills_existing_rows(prisma_app, database):
    """Deploy the first two migrations, add data, then deploy the backfill."""
    prisma_app.keep_only(2)
    assert prisma_app.prisma("migrate", "deploy", database_url=database.url()).rc == 0
    database.execute("INSERT INTO producers (name, email, region) VALUES ('Meli Kritis', 'meli@example.gr', 'Crete')")
    database.execute("INSERT INTO products (producer_id, name, price_cents) VALUES (1, 'Thyme Honey 500g', 1250)")

    full = type(prisma_app).copy_to(prisma_app.path.parent / "full")
    res = full.prisma("migrate", "deploy", database_url=database.url())
    assert res.rc == 0, res.output
    assert database.query("SELECT slug, status FROM products") == [("thyme-honey-500g-1", "active")]
    fks = {r[0] for r in database.query("SELECT conname FROM pg_constraint WHERE contype = 'f'")}
    assert fks == {"products_producer_id_fkey", "order_items_order_id_fkey", "order_items_product_id_fkey"}


def test_wrong_password_is_refused_by_the_cluster(prisma_app, database):
    """The cluster really checks passwords (scram-sha-256), so auth failures are testable."""
    res = prisma_app.prisma("migrate", "status", database_url=database.url(password="not-the-password"))
    assert res.rc != 0
    assert "P1000" in res.output or "authentication failed" in res.output.lower()
    assert database.query("SELECT count(*) FROM pg_tables WHERE tablename = '_prisma_migrations'") == [(0,)]
