"""Drive the project's playbooks against a database of the throwaway cluster."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from pgcluster import APP_ROLE, wait_until
from prismaapp import PrismaApp, current_major, offline_env

ROOT = Path(__file__).resolve().parents[1]
PHRASE = "DIXIS-PROD-OK"
SAMPLE = """
INSERT INTO producers (name, email, region) VALUES ('Meli', 'meli@example.gr', 'Crete');
INSERT INTO products (producer_id, name, price_cents) VALUES (1, 'Thyme Honey', 1250), (1, 'Pine Honey', 790);
INSERT INTO orders (customer_email) VALUES ('nikos@example.gr');
INSERT INTO order_items (order_id, product_id, quantity) VALUES (1, 1, 2);
"""


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str
    reports: list[dict]
    report_dir: Path

    @property
    def report(self) -> dict:
        assert self.reports, f"no report written\n{self.stdout[-3000:]}"
        return self.reports[-1]


def applied_migrations(db) -> list[str]:
    """The migrations recorded as applied in the database, by name."""
    rows = db.query(
        "SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL"
        " ORDER BY migration_name"
    )
    return [r[0] for r in rows]


def deployment_variables(app: PrismaApp, tmp: Path) -> dict:
    """What an inventory sets for a target: the checkout, Prisma's offline engine, snapshot and report folders."""
    return {
        "prisma_project_dir": str(app.path),
        "prisma_env": offline_env(app.path),
        "backup_dir": str(tmp / "backups"),
        "report_dir": str(tmp / "reports"),
    }


@dataclass
class Target:
    db: object
    app: PrismaApp
    tmp: Path

    @property
    def backup_dir(self) -> Path:
        return self.tmp / "backups"

    @property
    def report_dir(self) -> Path:
        return self.tmp / "reports"

    def applied(self) -> list[str]:
        return applied_migrations(self.db)

    def snapshots(self) -> list[Path]:
        return sorted(self.backup_dir.glob("*.dump")) if self.backup_dir.exists() else []

    def table_digest(self) -> dict[str, str]:
        """Every table of the schema with an md5 of its sorted rows: equal digests mean identical data."""
        tables = [r[0] for r in self.db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        digest = {}
        for table in tables:
            [(value,)] = self.db.query(
                f"SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM public.\"{table}\" t"
            )
            digest[table] = value
        return digest

    def variables(self, extra: dict | None = None) -> dict:
        """The inventory variables a real deployment would set for this target."""
        return {**deployment_variables(self.app, self.tmp), **(extra or {})}

    def command(
        self,
        extra: dict | None = None,
        url: str | None = None,
        check: bool = False,
        playbook: str = "migrate.yml",
        args: list[str] | None = None,
    ):
        variables = self.variables(extra)
        vars_file = self.tmp / f"vars-{time.monotonic_ns()}.json"
        vars_file.write_text(json.dumps(variables))
        argv = (
            [
                str(Path(sys.executable).parent / "ansible-playbook"),
                "-i",
                "inventories/local",
                f"playbooks/{playbook}",
                "-e",
                f"@{vars_file}",
            ]
            + (["--check"] if check else [])
            + list(args or [])
        )
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        )
        if url is not None:
            env["DATABASE_URL"] = url
        elif url is None and "DATABASE_URL" not in (extra or {}):
            env["DATABASE_URL"] = self.db.url()
        return argv, env

    def start(self, extra: dict | None = None, playbook: str = "migrate.yml", **popen) -> subprocess.Popen:
        """Start a playbook run in the background (stdout and stderr together)."""
        argv, env = self.command(extra, playbook=playbook)
        options = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True, **popen}
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, **options)

    def wait_for_session(
        self, where: str, timeout: float = 120, interval: float = 0.05, proc: subprocess.Popen | None = None
    ) -> bool:
        """Wait until a session matching ``where`` (SQL on pg_stat_activity) exists. With ``proc`` (the run
        expected to open it), a run that ends first fails the wait at once, with its output."""
        sql = f"SELECT count(*) FROM pg_stat_activity WHERE {where}"

        def seen() -> bool:
            if self.db.query(sql) != [(0,)]:
                return True
            if proc is not None and proc.poll() is not None:
                output = proc.stdout.read() if proc.stdout else "(not captured)"
                raise AssertionError(
                    f"the run ended (rc {proc.returncode}) before a session where {where} was seen:\n{output[-3000:]}"
                )
            return False

        return wait_until(seen, timeout=timeout, interval=interval)

    def run(
        self,
        extra: dict | None = None,
        url: str | None = None,
        check: bool = False,
        no_url: bool = False,
        playbook: str = "migrate.yml",
        args: list[str] | None = None,
    ) -> Run:
        argv, env = self.command(extra, url, check, playbook, args)
        if no_url:
            env.pop("DATABASE_URL", None)
        before = set(self.report_dir.glob("*.json")) if self.report_dir.exists() else set()
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=600, check=False
        )
        after = set(self.report_dir.glob("*.json")) if self.report_dir.exists() else set()
        reports = [json.loads(p.read_text()) for p in sorted(after - before)]
        return Run(proc.returncode, proc.stdout, proc.stderr, reports, self.report_dir)


# The databases make_target starts from, one per cluster, Prisma major and migration: deployed once by
# the real CLI, then copied for each target (CREATE DATABASE ... TEMPLATE: a file copy, about 0.1 s where
# a deploy costs about 3 s of CPU).
_prepared: dict[tuple[str, int, int, bool], str] = {}


def deploy(database, at: int, folder: Path, sample: bool = True) -> None:
    """``prisma migrate deploy`` of the current fixture's first ``at`` migrations (an older checkout in
    ``folder/old``) to ``database``, as its own role, then the sample rows."""
    old = PrismaApp.copy_to(folder / "old")
    old.keep_only(at)
    deployed = old.prisma("migrate", "deploy", database_url=database.url())
    assert deployed.rc == 0, deployed.output
    if sample:
        database.execute(SAMPLE)


def prepared_database(cluster, at: int, sample: bool = True) -> str:
    """The name of a database of ``cluster`` at migration ``at`` of 5 (with the sample rows), made once by
    ``prisma migrate deploy`` of the current fixture's first ``at`` migrations (a template: never used)."""
    key = (str(cluster.base), current_major(), at, sample)
    if key not in _prepared:
        template = cluster.create_database()
        with tempfile.TemporaryDirectory() as tmp:
            deploy(template, at, Path(tmp), sample)
        _prepared[key] = template.name
    return _prepared[key]


def copy_of(template: str, database) -> None:
    """Make ``database`` (no session on it) a copy of ``template``: same name, same credentials."""
    database.cluster.drop_database(database.name)
    database.cluster.create_database(database.name, template=template)


def make_target(tmp_path: Path, database, at: int = 2) -> Target:
    """``database`` (empty) brought to migration ``at`` of 5 with sample rows, and the new release checked
    out. A database of the app role becomes a copy of a prepared one (recreated under its name: grant
    anything per database after this); another role's is deployed by the CLI as that role, so it owns
    its tables."""
    if database.user == APP_ROLE:
        copy_of(prepared_database(database.cluster, at), database)
    else:
        deploy(database, at, tmp_path)
    return Target(database, PrismaApp.copy_to(tmp_path / "app"), tmp_path)


def no_advisory_locks(db) -> bool:
    return db.query("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == [(0,)]


def assert_no_secret(run: Run, target: Target):
    secret = target.db.password
    assert secret not in run.stdout
    assert secret not in run.stderr
    for folder in (target.report_dir, target.backup_dir):
        if folder.exists():
            for path in folder.rglob("*"):
                if path.is_file():
                    assert secret.encode() not in path.read_bytes(), path
