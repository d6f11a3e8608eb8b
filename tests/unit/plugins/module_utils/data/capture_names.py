"""Capture what real Prisma prints for unusual migration names and for its datasource line (issue 16 B, C).

Run from the repo root with `.venv/bin/python tests/unit/plugins/module_utils/data/capture_names.py`.
It starts a throwaway cluster, drives the fixture app (Prisma 6.19.3, WebAssembly engine, driver adapter)
and, when it is installed, the Prisma 7 fixture (tests/fixtures/prisma7-app, with its schema-engine stand-in),
and writes every case's rc, stdout and stderr - the two streams apart, exactly as printed - to
`real-names.json` beside this file. Ports, database names and the password are replaced by stable
placeholders (5432, app / other, ********, /repo) so that a re-capture produces no noise in the diff.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parents[3]
sys.path.insert(0, str(TESTS))

from pgcluster import PgCluster  # noqa: E402
from prismaapp import UNUSUAL_NAMES, PrismaApp  # noqa: E402

PRISMA7 = TESTS / "fixtures" / "prisma7-app"

UNUSUAL = UNUSUAL_NAMES
FAILING = '20240401090000_fail "q" back\\slash é+ 🚀'


def main() -> None:
    cases: dict[str, dict] = {}
    with PgCluster() as cluster, tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        names: dict[str, str] = {str(TESTS.parent): "/repo"}

        def placeholders(text: str) -> str:
            text = text.replace(str(cluster.port), "5432").replace(cluster.app_password, "********")
            for real, shown in names.items():
                text = text.replace(real, shown)
            return text

        def keep(case, rc, stdout, stderr):
            cases[case] = {"rc": rc, "stdout": placeholders(stdout), "stderr": placeholders(stderr)}
            print(f"{case}: rc {rc}")

        def fresh(name, tag="app"):
            db = cluster.create_database()
            names[db.name] = tag
            return db, PrismaApp.copy_to(tmp / name, major=6)

        def run6(app, case, *args, url, extra_env=None):
            res = app.prisma(*args, database_url=url, extra_env=extra_env)
            keep(f"prisma6-{case}", res.rc, res.stdout, res.stderr)
            return res

        def add(app_dir: Path, name: str, sql: str) -> None:
            folder = app_dir / "prisma" / "migrations" / name
            folder.mkdir()
            (folder / "migration.sql").write_text(sql)

        # Prisma 6.19, driver adapter: pending, applied (coloured), up to date, failed, diverged.
        db, app = fresh("six")
        for i, name in enumerate(UNUSUAL):
            add(app.path, name, f'CREATE TABLE "unusual_{i}" (id int);\n')
        run6(app, "status-unusual-pending", "migrate", "status", url=db.url())
        run6(app, "deploy-unusual-applied-color", "migrate", "deploy", url=db.url(), extra_env={"FORCE_COLOR": "1"})
        run6(app, "status-unusual-up-to-date", "migrate", "status", url=db.url())
        add(app.path, FAILING, 'CREATE TABLE "unusual_0" (id int);\n')
        run6(app, "deploy-unusual-failed", "migrate", "deploy", url=db.url())
        run6(app, "status-unusual-failed", "migrate", "status", url=db.url())

        db, app = fresh("diverged")
        for i, name in enumerate(UNUSUAL[:5]):
            add(app.path, name, f'CREATE TABLE "unusual_{i}" (id int);\n')
        assert app.prisma("migrate", "deploy", database_url=db.url()).rc == 0
        for name in UNUSUAL[3:5]:
            shutil.rmtree(app.path / "prisma" / "migrations" / name)
        add(app.path, "20240350090000_new é one", "SELECT 1;\n")
        add(app.path, "20240351090000_new + two", "SELECT 1;\n")
        run6(app, "status-unusual-diverged", "migrate", "status", url=db.url())

        # A folder without migration.sql: Prisma counts and lists it.
        db, app = fresh("empty-folder")
        (app.migrations_dir / "20240501090000_no sql here").mkdir()
        run6(app, "status-folder-without-sql", "migrate", "status", url=db.url())

        # A migration marked rolled back: this engine's status says up to date, its deploy applies it again.
        db, app = fresh("rolled-back")
        assert app.prisma("migrate", "deploy", database_url=db.url()).rc == 0
        db.execute(
            "UPDATE _prisma_migrations SET rolled_back_at = now() WHERE migration_name = %s",
            (app.migration_names()[-1],),
        )
        run6(app, "status-rolled-back", "migrate", "status", url=db.url())

        # The datasource line: directUrl (another database), multiSchema.
        other = cluster.create_database()
        names[other.name] = "other"
        app = PrismaApp.copy_to(tmp / "direct", major=6)
        schema = app.path / "prisma" / "schema.prisma"
        schema.write_text(schema.read_text().replace('url      = env("DATABASE_URL")', 'url       = env("DATABASE_URL")\n  directUrl = env("DIRECT_URL")'))  # fmt: skip
        run6(app, "status-direct-url", "migrate", "status", url=db.url(), extra_env={"DIRECT_URL": other.url()})
        app = PrismaApp.copy_to(tmp / "multi", major=6)
        schema = app.path / "prisma" / "schema.prisma"
        schema.write_text(schema.read_text().replace('url      = env("DATABASE_URL")', 'url      = env("DATABASE_URL")\n  schemas  = ["public", "audit"]'))  # fmt: skip
        run6(app, "status-multi-schema", "migrate", "status", url=db.url())

        # Prisma 6.19 without the driver adapter prints "at HOST:PORT" before it tries the native engine
        # (which these machines lack: the command then fails, after the line).
        app = PrismaApp.copy_to(tmp / "classic", major=6)
        (app.path / "prisma.config.ts").write_text("import { defineConfig } from 'prisma/config'\nexport default defineConfig({})\n")  # fmt: skip
        pw = cluster.app_password
        for case, url in {
            "classic-ipv4": f"postgresql://app:{pw}@127.0.0.1:{cluster.port}/{db.name}?schema=shop",
            "classic-ipv6": f"postgresql://app:{pw}@[::1]:{cluster.port}/x%20y?schema=my%20schema",
            "classic-no-port": f"postgresql://app:{pw}@DB.Example.COM/shop",
            "classic-socket": f"postgresql://app:{pw}@localhost/shop?host=/var/run/postgresql",
            "classic-no-host": f"postgresql://app:{pw}@/shop?host=/var/run/postgresql",
        }.items():
            run6(app, f"status-{case}", "migrate", "status", url=url)

        # Prisma 7.10 (its schema-engine stand-in): "at HOST:PORT" always.
        if (PRISMA7 / "node_modules" / "prisma").is_dir():
            app7 = tmp / "seven"
            shutil.copytree(PRISMA7, app7, ignore=shutil.ignore_patterns("node_modules"))
            (app7 / "node_modules").symlink_to(PRISMA7 / "node_modules")
            db7 = cluster.create_database()
            names[db7.name] = "app"
            names[str(cluster.socket_dir)] = "/var/run/postgresql"
            for i, name in enumerate(UNUSUAL):
                add(app7, name, f'CREATE TABLE "unusual_{i}" (id int);\n')

            def run7(case, *args, url):
                env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
                env.update(
                    PRISMA_SCHEMA_ENGINE_BINARY=str(PRISMA7 / "schema-engine-standin.mjs"),
                    PRISMA_HIDE_UPDATE_MESSAGE="1",
                    CHECKPOINT_DISABLE="1",
                    DATABASE_URL=url,
                )
                proc = subprocess.run(
                    ["npx", "--no-install", "prisma", *args],
                    cwd=app7,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=180,
                    check=False,
                )
                keep(f"prisma7-{case}", proc.returncode, proc.stdout, proc.stderr)

            run7("status-unusual-pending", "migrate", "status", url=db7.url())
            run7("deploy-unusual-applied", "migrate", "deploy", url=db7.url())
            for case, url in {
                "status-localhost": db7.url().replace("@127.0.0.1:", "@localhost:"),
                "status-ipv6": db7.url().replace("@127.0.0.1:", "@[::1]:"),
                "status-no-port": "postgresql://app:x@DB.Example.COM/shop",
                "status-socket": f"postgresql://app:x@localhost/shop?host={cluster.socket_dir}",
            }.items():
                run7(case, "migrate", "status", url=url)
        else:
            print(f"{PRISMA7}/node_modules missing: Prisma 7 cases not captured")

    path = HERE / "real-names.json"
    path.write_text(json.dumps(cases, indent=1, ensure_ascii=False, sort_keys=True) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
