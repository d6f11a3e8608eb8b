"""The fixture Prisma app, copied per test, and a runner for its CLI.

The copy shares the installed ``node_modules`` (a symlink), so tests can add,
edit or delete migrations freely without reinstalling anything.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "prisma-app"
MIGRATIONS = ["20240105090000_init",
              "20240112090000_add_product_status",
              "20240120090000_backfill_product_slug",
              "20240201090000_add_product_name_index",
              "20240210090000_add_order_item_foreign_keys"]  # fmt: skip

# The command and environment an inventory would give the playbook for this
# fixture (see the offline recipe in prisma.config.ts).
PRISMA_COMMAND = ["npx", "--no-install", "prisma"]


# Migration folder names Prisma accepts (it takes any folder name) and prints as they are: a space at
# either end or inside, +, non-ASCII letters, an emoji, quotes, a backslash, and lines that look like
# its own headers, errors and Datasource line (issue 16 B).
UNUSUAL_NAMES = [
    " 20240300090000_leading space",
    "20240301090000_add space",
    "20240302090000_c++ plus+",
    "20240303090000_café_ñandú",
    "20240304090000_🚀 launch",
    "20240305090000_Following migrations have not yet been applied:",
    "20240306090000_Error: looks like an error",
    '20240307090000_Datasource "db": PostgreSQL database "other"',
    "20240308090000_quote\"and'apostrophe",
    "20240309090000_back\\slash",
    "20240310090000_Ünïcödé",
    "20240311090000_trailing space ",
]


def offline_env(app_dir: Path) -> dict[str, str]:
    """Environment that makes the Prisma CLI work offline (fixture only)."""
    stub = FIXTURE / "offline-engine.stub"
    return {
        "PRISMA_QUERY_ENGINE_LIBRARY": str(stub),
        "PRISMA_SCHEMA_ENGINE_BINARY": str(stub),
        "PRISMA_HIDE_UPDATE_MESSAGE": "1",
        "CHECKPOINT_DISABLE": "1",
        "NODE_OPTIONS": f"--require {FIXTURE / 'unref-long-timers.cjs'}",
    }


@dataclass
class Result:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


@dataclass
class PrismaApp:
    path: Path

    @classmethod
    def copy_to(cls, dest: Path) -> PrismaApp:
        if not (FIXTURE / "node_modules" / "prisma").is_dir():
            raise RuntimeError(f"{FIXTURE}/node_modules is missing; run 'make setup'")
        shutil.copytree(FIXTURE, dest, ignore=shutil.ignore_patterns("node_modules"))
        (dest / "node_modules").symlink_to(FIXTURE / "node_modules")
        return cls(dest)

    @property
    def migrations_dir(self) -> Path:
        return self.path / "prisma" / "migrations"

    def migration_names(self) -> list[str]:
        return sorted(p.name for p in self.migrations_dir.iterdir() if (p / "migration.sql").is_file())

    def add_migration(self, name: str, sql: str) -> Path:
        d = self.migrations_dir / name
        d.mkdir()
        (d / "migration.sql").write_text(sql)
        return d

    def remove_migration(self, name: str) -> None:
        shutil.rmtree(self.migrations_dir / name)

    def keep_only(self, count: int) -> None:
        """Keep the first ``count`` migrations, as an older checkout would."""
        for name in self.migration_names()[count:]:
            self.remove_migration(name)

    def env(self, database_url: str | None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(offline_env(self.path))
        if database_url is not None:
            env["DATABASE_URL"] = database_url
        return env

    def prisma(self, *args: str, database_url: str | None, timeout: int = 120, extra_env=None) -> Result:
        proc = subprocess.run(
            [*PRISMA_COMMAND, *args],
            cwd=self.path,
            env={**self.env(database_url), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)
