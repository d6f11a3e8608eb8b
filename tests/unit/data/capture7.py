"""Capture real Prisma CLI output of a fixture app for the parser's tests.

Run from the repo root:

    .venv/bin/python tests/unit/data/capture7.py                 # Prisma 7 fixture -> prisma7/
    .venv/bin/python tests/unit/data/capture7.py --app tests/fixtures/prisma-app --out /tmp/p6

It starts a throwaway PostgreSQL cluster (tests/pgcluster.py), drives a copy of
the app into every state this machine can reach, and writes what Prisma
printed - stderr first, then stdout, as a terminal shows it; nothing stripped
- to ``real-<command>-<case>.rc<N>.txt`` in the output folder. Only the
cluster's port (-> 5432), the generated database names (-> app), the
temporary folder of the app copies (-> <tmp>) and the throwaway
passwords (-> ********) are replaced, so that a re-capture produces no
noise in the diff. Timestamps Prisma prints (P3009's "started at") stay.

The app folder decides how the CLI runs offline: a folder with
``schema-engine-standin.mjs`` (Prisma 7) gets PRISMA_SCHEMA_ENGINE_BINARY
pointing at it; a folder without it gets the Prisma 6 recipe of
tests/prismaapp.py (engine: 'js' with the stub files). The Prisma 7-only cases
(URL in schema.prisma, config without datasource.url, DATABASE_URL unset) are
captured only for an app whose config reads ``env('DATABASE_URL')``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "tests"))

from pgcluster import PgCluster  # noqa: E402
from prismaapp import offline_env  # noqa: E402

PRISMA_COMMAND = ["npx", "--no-install", "prisma"]
STANDIN = "schema-engine-standin.mjs"
BAD = "20240301090000_require_product_weight"

FAILING_SQL = """-- AlterTable
ALTER TABLE "products" ADD COLUMN "weight_grams" INTEGER;

-- Deliberately fails on real data: the column is still NULL everywhere
ALTER TABLE "products" ALTER COLUMN "weight_grams" SET NOT NULL;
"""


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str


class App:
    """A copy of the fixture app sharing its node_modules (a symlink)."""

    def __init__(self, source: Path, dest: Path):
        if not (source / "node_modules" / "prisma").is_dir():
            raise SystemExit(f"{source}/node_modules is missing: npm ci --ignore-scripts in {source}")
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("node_modules"))
        (dest / "node_modules").symlink_to(source / "node_modules")
        self.source, self.path = source, dest

    @property
    def migrations(self) -> Path:
        return self.path / "prisma" / "migrations"

    @property
    def schema(self) -> Path:
        return self.path / "prisma" / "schema.prisma"

    @property
    def config(self) -> Path:
        return self.path / "prisma.config.ts"

    def names(self) -> list[str]:
        return sorted(p.name for p in self.migrations.iterdir() if (p / "migration.sql").is_file())

    def add(self, name: str, sql: str) -> None:
        (self.migrations / name).mkdir()
        (self.migrations / name / "migration.sql").write_text(sql)

    def remove(self, name: str) -> None:
        shutil.rmtree(self.migrations / name)

    def keep_only(self, count: int) -> None:
        for name in self.names()[count:]:
            self.remove(name)

    def env(self, database_url: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "FORCE_COLOR", "NO_COLOR")}
        if (self.source / STANDIN).is_file():
            env.update(
                PRISMA_SCHEMA_ENGINE_BINARY=str(self.source / STANDIN),
                PRISMA_HIDE_UPDATE_MESSAGE="1",
                CHECKPOINT_DISABLE="1",
            )
        else:
            env.update(offline_env(self.path))
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        return env

    def prisma(self, *args: str, database_url: str | None, extra_env: dict | None = None) -> Result:
        proc = subprocess.run(
            [*PRISMA_COMMAND, *args],
            cwd=self.path,
            env={**self.env(database_url), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", type=Path, default=REPO / "tests" / "fixtures" / "prisma7-app")
    ap.add_argument("--out", type=Path, default=HERE / "prisma7")
    opts = ap.parse_args()
    source, out = opts.app.resolve(), opts.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    reads_env_url = "env('DATABASE_URL')" in (source / "prisma.config.ts").read_text()

    with PgCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        made: list[str] = []
        n = 0

        def save(db_name, command, case, res):
            text = res.stderr + res.stdout
            text = text.replace(str(cluster.port), "5432").replace(db_name, "app").replace(str(tmp), "<tmp>")
            for secret in (cluster.app_password, cluster.superuser_password):
                text = text.replace(secret, "********")
            path = out / f"real-{command}-{case}.rc{res.rc}.txt"
            for old in out.glob(f"real-{command}-{case}.rc*.txt"):
                old.unlink()
            path.write_text(text)
            made.append(path.name)
            print(f"wrote {path.name}", flush=True)

        def fresh(count=None):
            nonlocal n
            n += 1
            db = cluster.create_database()
            app = App(source, tmp / f"app{n}")
            if count is not None:
                app.keep_only(count)
            return db, app

        def run(app, db, command, case, *args, url="db", extra_env=None):
            url = db.url() if url == "db" else url
            res = app.prisma(*command.split("-", 1), *args, database_url=url, extra_env=extra_env)
            save(db.name, command, case, res)
            return res

        def deploy(app, db):
            res = app.prisma("migrate", "deploy", database_url=db.url())
            assert res.rc == 0, res.stderr + res.stdout

        # Everything pending, then deploy, then up to date; validate.
        db, app = fresh()
        run(app, db, "migrate-status", "pending-all")
        run(app, db, "migrate-status", "pending-all-color", extra_env={"FORCE_COLOR": "1"})
        run(app, db, "migrate-deploy", "applied-all")
        run(app, db, "migrate-deploy", "nothing-pending")
        run(app, db, "migrate-status", "up-to-date")
        run(app, db, "validate", "ok")

        # One pending (singular wording), then applied.
        db, app = fresh(4)
        deploy(app, db)
        full = App(source, tmp / "full-one")
        run(full, db, "migrate-status", "pending-one")
        run(full, db, "migrate-deploy", "applied-one")

        # A failing migration, then the failed state, P3009, and resolve --rolled-back.
        db, app = fresh()
        deploy(app, db)
        db.execute("INSERT INTO producers (name, email, region) VALUES ('P', 'p@example.gr', 'Crete')")
        db.execute("INSERT INTO products (producer_id, name, slug, price_cents) VALUES (1, 'Oil', 'oil-1', 900)")
        app.add(BAD, FAILING_SQL)
        run(app, db, "migrate-deploy", "failed")
        run(app, db, "migrate-status", "failed")
        run(app, db, "migrate-deploy", "blocked-by-failed")
        run(app, db, "migrate-resolve", "rolled-back-not-failed", "--rolled-back", app.names()[0])
        run(app, db, "migrate-resolve", "rolled-back", "--rolled-back", BAD)
        run(app, db, "migrate-status", "pending-after-rolled-back")

        # A failed migration marked applied (the hotfix path), then again.
        db, app = fresh()
        deploy(app, db)
        db.execute("INSERT INTO producers (name, email, region) VALUES ('P', 'p@example.gr', 'Crete')")
        db.execute("INSERT INTO products (producer_id, name, slug, price_cents) VALUES (1, 'Oil', 'oil-1', 900)")
        app.add(BAD, FAILING_SQL)
        app.prisma("migrate", "deploy", database_url=db.url())
        run(app, db, "migrate-resolve", "applied", "--applied", BAD)
        run(app, db, "migrate-resolve", "applied-already-applied", "--applied", BAD)
        run(app, db, "migrate-status", "up-to-date-after-resolve-applied")

        # Edited after apply, deleted locally, diverged.
        db, app = fresh()
        deploy(app, db)
        sql = app.migrations / "20240201090000_add_product_name_index" / "migration.sql"
        sql.write_text(sql.read_text() + "\n-- edited after it was applied\n")
        run(app, db, "migrate-status", "edited-after-apply")
        run(app, db, "migrate-deploy", "edited-after-apply")
        app.remove("20240210090000_add_order_item_foreign_keys")
        run(app, db, "migrate-status", "missing-locally")
        app.add("20240305090000_add_producer_phone", 'ALTER TABLE "producers" ADD COLUMN "phone" TEXT;\n')
        run(app, db, "migrate-status", "diverged")

        # Tables but no _prisma_migrations; no migrations at all.
        db, app = fresh()
        db.execute("CREATE TABLE legacy (id int)")
        run(app, db, "migrate-status", "tables-without-history")
        db, app = fresh()
        for name in app.names():
            app.remove(name)
        run(app, db, "migrate-status", "no-migrations-not-managed")

        # Connection errors; a missing database (deploy creates it on Prisma 7).
        db, app = fresh()
        wrong = db.url(password="wrong-throwaway")
        run(app, db, "migrate-status", "auth-failed", url=wrong)
        run(app, db, "migrate-deploy", "auth-failed", url=wrong)
        unreachable = db.url().replace(f":{cluster.port}/", ":1/")
        run(app, db, "migrate-status", "unreachable", url=unreachable)
        run(app, db, "migrate-deploy", "unreachable", url=unreachable)
        missing = db.url().replace(f"/{db.name}?", f"/{db.name}_missing?")
        run(app, db, "migrate-status", "database-missing", url=missing)
        run(app, db, "migrate-deploy", "database-missing", url=missing)
        run(app, db, "migrate-status", "up-to-date-after-database-created", url=missing)

        # An invalid schema.
        db, app = fresh()
        app.schema.write_text(app.schema.read_text().replace('provider = "postgresql"', 'provider = "postgres-typo"'))
        run(app, db, "migrate-status", "invalid-schema")
        run(app, db, "migrate-deploy", "invalid-schema")
        run(app, db, "validate", "invalid-schema")

        if reads_env_url:
            # Prisma 7: a URL in schema.prisma is refused (P1012).
            db, app = fresh()
            app.schema.write_text(
                app.schema.read_text().replace(
                    'provider = "postgresql"\n', 'provider = "postgresql"\n  url      = env("DATABASE_URL")\n'
                )
            )
            run(app, db, "migrate-status", "url-in-schema")
            run(app, db, "migrate-deploy", "url-in-schema")
            # A config without datasource.url; DATABASE_URL not set.
            db, app = fresh()
            text = app.config.read_text()
            start, end = text.index("  datasource: {"), text.index("  },\n", text.index("  datasource: {")) + 5
            app.config.write_text(text[:start] + text[end:])
            run(app, db, "migrate-status", "config-without-url")
            run(app, db, "migrate-deploy", "config-without-url")
            db, app = fresh()
            run(app, db, "migrate-status", "database-url-unset", url=None)
            run(app, db, "migrate-deploy", "database-url-unset", url=None)

        print(f"{len(made)} captures in {out}")


if __name__ == "__main__":
    main()
