"""Shared testinfra fixtures for the molecule scenarios.

The verifiers talk to the containers through testinfra's podman backend
(``podman exec``), read what prepare.yml recorded in molecule's ephemeral
directory, and compare the database and the files against it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import testinfra

RESOURCES = Path(__file__).resolve().parent / "resources"
APP_DIR = "/srv/app/current"
BACKUP_DIR = "/var/backups/prisma"
RELEASE_MARK = f"{APP_DIR}/.release-shipped"
# Where a run can write on the app host: snapshots, the app, the deploy user's
# home (Ansible's remote tmp) and the system's temporary directory.
RUN_WRITES = [BACKUP_DIR, "/srv/app", "/home/deploy", "/tmp"]  # noqa: S108 (read, not written)
# ... and on the database host: the server's log and the temporary directory.
DB_WRITES = ["/var/log/postgresql", "/tmp"]  # noqa: S108 (read, not written)
FIXTURE_MIGRATIONS = sorted(
    p.name for p in (RESOURCES.parent.parent / "tests/fixtures/prisma7-app/prisma/migrations").iterdir() if p.is_dir()
)


class Staging:
    """The two containers and what prepare.yml recorded about them."""

    def __init__(self) -> None:
        ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
        if not ephemeral:
            pytest.exit("MOLECULE_EPHEMERAL_DIRECTORY is not set: run these through 'make molecule'", returncode=2)
        self.ephemeral = Path(ephemeral)
        self.db = testinfra.get_host("podman://staging-db")
        self.app = testinfra.get_host("podman://staging-app")

    @property
    def password(self) -> str:
        return (self.ephemeral / "db_password").read_text().split()[0]

    @property
    def before(self) -> dict[str, str]:
        return json.loads((self.ephemeral / "build" / "before.json").read_text())

    @property
    def reports(self) -> list[dict]:
        """The JSON run reports, oldest first."""
        files = sorted((self.ephemeral / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime)
        return [json.loads(p.read_text()) for p in files]

    def psql(self, sql: str) -> str:
        out = self.db.run("runuser -u postgres -- psql -XAtq -v ON_ERROR_STOP=1 -d app_staging -c %s", sql)
        assert out.rc == 0, out.stderr
        return out.stdout.strip()

    def digest(self) -> dict[str, str]:
        return json.loads(self.psql((RESOURCES / "digest.sql").read_text()))

    def migrations(self) -> list[tuple[str, bool, bool]]:
        """(name, finished, rolled back) of every row of _prisma_migrations."""
        rows = self.psql(
            "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL"
            " FROM _prisma_migrations ORDER BY migration_name"
        )
        return [(n, f == "t", r == "t") for n, f, r in (line.split("|") for line in rows.splitlines())]

    def snapshots(self, host) -> list[str]:
        out = host.run("find %s -maxdepth 1 -type f -name '*.dump' -printf '%%f\\n'", BACKUP_DIR)
        return sorted(out.stdout.split())

    def files_holding_password(self, container: str, paths: list[str]) -> list[str]:
        """Files under paths (in the container) that contain the password.

        The password goes to grep on stdin, never on a command line.
        """
        proc = subprocess.run(
            ["podman", "exec", "-i", container, "grep", "-rlsF", "-f", "-", "--", *paths],
            input=self.password + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode in (0, 1), proc.stderr
        return proc.stdout.split()

    def leaks(self) -> list[str]:
        """Every file a run wrote, here or in the containers, that holds the password."""
        found = [f"staging-app:{f}" for f in self.files_holding_password("staging-app", RUN_WRITES)]
        found += [f"staging-db:{f}" for f in self.files_holding_password("staging-db", DB_WRITES)]
        # The reports, the nested runs' output, and ansible.log: everything
        # ansible-playbook printed in this scenario (log_path in the molecule config).
        written = [*sorted((self.ephemeral / "reports").glob("*")), *sorted((self.ephemeral / "runs").glob("*"))]
        written.append(self.ephemeral / "ansible.log")
        assert written[-1].is_file(), "ansible.log is missing: log_path in .config/molecule/config.yml"
        assert len(written) > 1, "no reports to search"
        found += [str(p) for p in written if self.password in p.read_text(errors="replace")]
        return found

    def changed_app_files(self) -> list[str]:
        """Files of the app checkout modified since prepare.yml shipped the release."""
        assert self.app.file(RELEASE_MARK).is_file, f"{RELEASE_MARK} is missing: prepare did not finish"
        out = self.app.run("find %s -newer %s -type f", APP_DIR, RELEASE_MARK)
        assert out.rc == 0, out.stderr
        return out.stdout.split()

    def fingerprint(self, sql: str) -> str:
        """Row count and md5 of the rows a query returns, as digest.sql computes them per table."""
        return self.psql(
            f"SELECT count(*) || ':' || md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM ({sql}) r"
        )


@pytest.fixture(scope="session")
def staging() -> Staging:
    return Staging()
