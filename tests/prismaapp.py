"""The fixture Prisma apps, copied per test, and a runner for their CLI.

Two fixtures, the same schema and the same five migrations byte for byte:
Prisma 7.10.1 (``fixtures/prisma7-app``, the default: what teams run today)
and Prisma 6.19.3 (``fixtures/prisma-app``). Which one a copy is made from is
``current_major()``: the integration tests set it per test (their conftest:
``@pytest.mark.prisma6`` also runs a test on 6.19), scripts take
``PRISMA_FIXTURE_MAJOR`` (7 or 6) from the environment.

The copy shares the installed ``node_modules`` (a symlink), so tests can add,
edit or delete migrations freely without reinstalling anything.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

FIXTURES = {
    7: Path(__file__).resolve().parent / "fixtures" / "prisma7-app",
    6: Path(__file__).resolve().parent / "fixtures" / "prisma-app",
}
DEFAULT_MAJOR = 7
# The schema-engine stand-in of the Prisma 7 fixture (test-only, see its README): a copy carries it.
STANDIN = "schema-engine-standin.mjs"


def _major_from_environment() -> int:
    value = os.environ.get("PRISMA_FIXTURE_MAJOR", str(DEFAULT_MAJOR))
    if value not in ("6", "7"):
        raise SystemExit(f"PRISMA_FIXTURE_MAJOR={value!r}: use 7 (Prisma 7.10.1) or 6 (Prisma 6.19.3)")
    return int(value)


_major = _major_from_environment()


def current_major() -> int:
    """The Prisma major new copies are made with."""
    return _major


def use_major(major: int) -> None:
    """Make new copies from the fixture of ``major`` (7 or 6)."""
    global _major
    if major not in FIXTURES:
        raise ValueError(f"no fixture app for Prisma {major}")
    _major = major


def fixture(major: int | None = None) -> Path:
    """The installed fixture app of ``major`` (default: the current one)."""
    return FIXTURES[current_major() if major is None else major]


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


def major_of(app_dir: Path) -> int:
    """The Prisma major of a checkout made from a fixture (the Prisma 7 one carries the stand-in)."""
    return 7 if (Path(app_dir) / STANDIN).is_file() else 6


def offline_env(app_dir: Path) -> dict[str, str]:
    """Environment that makes the fixture's Prisma CLI work offline (fixtures only; an inventory gives
    the playbook the same as ``prisma_env``)."""
    quiet = {"PRISMA_HIDE_UPDATE_MESSAGE": "1", "CHECKPOINT_DISABLE": "1"}
    if major_of(app_dir) == 7:
        # Prisma 7 always spawns the schema engine: the checkout's stand-in plays it.
        return {"PRISMA_SCHEMA_ENGINE_BINARY": str(Path(app_dir).resolve() / STANDIN), **quiet}
    stub = FIXTURES[6] / "offline-engine.stub"
    return {
        "PRISMA_QUERY_ENGINE_LIBRARY": str(stub),
        "PRISMA_SCHEMA_ENGINE_BINARY": str(stub),
        **quiet,
        "NODE_OPTIONS": f"--require {FIXTURES[6] / 'unref-long-timers.cjs'}",
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
    def copy_to(cls, dest: Path, major: int | None = None) -> PrismaApp:
        source = fixture(major)
        if not (source / "node_modules" / "prisma").is_dir():
            raise RuntimeError(f"{source}/node_modules is missing; run 'make setup'")
        shutil.copytree(source, dest, ignore=shutil.ignore_patterns("node_modules", "README.md"))
        (dest / "node_modules").symlink_to(source / "node_modules")
        return cls(dest)

    @property
    def major(self) -> int:
        return major_of(self.path)

    @property
    def version(self) -> str:
        """The Prisma CLI version the checkout runs."""
        return json.loads((self.path / "node_modules" / "prisma" / "package.json").read_text())["version"]

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
        # The checkout's own CLI, as the playbook's default prisma_command finds it (npx adds ~0.6 s a call)
        proc = subprocess.run(
            [str(self.path / "node_modules" / ".bin" / "prisma"), *args],
            cwd=self.path,
            env={**self.env(database_url), **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)
