"""Capture real `prisma migrate status` / `migrate deploy` output for the parser's tests.

Run from the repo root with `.venv/bin/python tests/unit/data/prisma/capture.py`.
It starts a throwaway cluster, drives the fixture app into every state this
machine can reach, and writes what Prisma printed (stderr first, then stdout,
as a terminal shows it) to `real-<command>-<case>.rc<N>.txt` beside this file.
Ports and database names are replaced by stable placeholders so that a
re-capture produces no noise in the diff.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from pgcluster import PgCluster  # noqa: E402
from prismaapp import PrismaApp  # noqa: E402

FAILING_SQL = """-- AlterTable
ALTER TABLE "products" ADD COLUMN "weight_grams" INTEGER;

-- Deliberately fails on real data: the column is still NULL everywhere
ALTER TABLE "products" ALTER COLUMN "weight_grams" SET NOT NULL;
"""


def save(cluster, db_name, command, case, res):
    text = res.stderr + res.stdout
    text = text.replace(str(cluster.port), "5432").replace(db_name, "app")
    text = text.replace(cluster.app_password, "********")
    path = HERE / f"real-{command}-{case}.rc{res.rc}.txt"
    path.write_text(text)
    print(f"wrote {path.name}")


def main() -> None:
    with PgCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        n = 0

        def fresh(count=None):
            nonlocal n
            n += 1
            db = cluster.create_database()
            app = PrismaApp.copy_to(tmp / f"app{n}")
            if count is not None:
                app.keep_only(count)
            return db, app

        def run(app, db, command, case, *args, url=None, extra_env=None):
            res = app.prisma(*command.split("-"), *args, database_url=url or db.url(), extra_env=extra_env)
            save(cluster, db.name, command, case, res)
            return res

        # status: everything pending, then deploy, then up to date
        db, app = fresh()
        run(app, db, "migrate-status", "pending-all")
        run(app, db, "migrate-status", "pending-all-color", extra_env={"FORCE_COLOR": "1"})
        run(app, db, "migrate-deploy", "applied-all")
        run(app, db, "migrate-deploy", "nothing-pending")
        run(app, db, "migrate-status", "up-to-date")

        # one pending (singular wording)
        db, app = fresh(4)
        app.prisma("migrate", "deploy", database_url=db.url())
        full = PrismaApp.copy_to(tmp / "full-one")
        run(full, db, "migrate-status", "pending-one")

        # a failed migration
        db, app = fresh()
        app.prisma("migrate", "deploy", database_url=db.url())
        db.execute("INSERT INTO producers (name, email, region) VALUES ('P', 'p@example.gr', 'Crete')")
        db.execute("INSERT INTO products (producer_id, name, slug, price_cents) VALUES (1, 'Oil', 'oil-1', 900)")
        app.add_migration("20240301090000_require_product_weight", FAILING_SQL)
        run(app, db, "migrate-deploy", "failed")
        run(app, db, "migrate-status", "failed")
        run(app, db, "migrate-deploy", "blocked-by-failed")

        # edited after apply, and deleted locally (Prisma says "up to date")
        db, app = fresh()
        app.prisma("migrate", "deploy", database_url=db.url())
        sql = app.migrations_dir / "20240201090000_add_product_name_index" / "migration.sql"
        sql.write_text(sql.read_text() + "\n-- edited after it was applied\n")
        run(app, db, "migrate-status", "edited-after-apply")
        run(app, db, "migrate-deploy", "edited-after-apply")
        app.remove_migration("20240210090000_add_order_item_foreign_keys")
        run(app, db, "migrate-status", "missing-locally")

        # diverged: one applied migration missing locally plus a new local one
        app.add_migration("20240305090000_add_producer_phone", 'ALTER TABLE "producers" ADD COLUMN "phone" TEXT;\n')
        run(app, db, "migrate-status", "diverged")

        # tables but no _prisma_migrations: this engine reports them as pending
        db, app = fresh()
        db.execute("CREATE TABLE legacy (id int)")
        run(app, db, "migrate-status", "tables-without-history")

        # no migrations at all: "not managed by Prisma Migrate"
        db, app = fresh()
        for name in app.migration_names():
            app.remove_migration(name)
        run(app, db, "migrate-status", "no-migrations-not-managed")

        # connection errors
        db, app = fresh()
        run(app, db, "migrate-status", "auth-failed", url=db.url(password="wrong"))
        run(app, db, "migrate-deploy", "auth-failed", url=db.url(password="wrong"))
        missing = db.url().replace(f"/{db.name}?", f"/{db.name}_missing?")
        run(app, db, "migrate-status", "database-missing", url=missing)
        run(app, db, "migrate-deploy", "database-missing", url=missing)
        unreachable = db.url().replace(f":{cluster.port}/", ":1/")
        run(app, db, "migrate-status", "unreachable", url=unreachable)

        # invalid schema
        schema = app.path / "prisma" / "schema.prisma"
        schema.write_text(schema.read_text().replace('provider = "postgresql"', 'provider = "postgres-typo"'))
        run(app, db, "migrate-status", "invalid-schema")


if __name__ == "__main__":
    main()
