"""Shared fixtures: a session-wide throwaway PostgreSQL cluster, a fresh
database per test, and a fresh copy of the fixture Prisma app per test."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from pgcluster import Database, PgCluster  # noqa: E402
from playbook_target import copy_of, prepared_database  # noqa: E402
from prismaapp import PrismaApp  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway cluster for the session, stopped and deleted at the end,
    whatever the tests did."""
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture
def database(pg_cluster: PgCluster):
    """A fresh, empty database owned by the application role."""
    db = pg_cluster.create_database()
    yield db
    pg_cluster.drop_database(db.name)


@pytest.fixture
def prisma_app(tmp_path: Path) -> PrismaApp:
    """A private copy of the fixture app (migrations may be edited freely)."""
    return PrismaApp.copy_to(tmp_path / "app")


@pytest.fixture
def migrated(database: Database, prisma_app: PrismaApp):
    """The fixture app fully deployed to a fresh database (a copy of one deployed by its CLI)."""
    copy_of(prepared_database(database.cluster, len(prisma_app.migration_names()), sample=False), database)
    return database, prisma_app
