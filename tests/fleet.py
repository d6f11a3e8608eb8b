"""A fleet of tenant databases in one throwaway cluster, migrated as one rollout.

Every tenant starts as a copy of one database at migration 2 of 5 with sample
rows. The inventory gives each tenant its own DATABASE_URL through an
environment variable (FLEET_URL_TENANT_1 ...), so no password is written to a file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from playbook_target import PHRASE, ROOT, applied_migrations, deployment_variables, prepared_database
from prismaapp import PrismaApp


def env_name(host: str) -> str:
    return "FLEET_URL_" + host.upper().replace("-", "_")


@dataclass
class FleetRun:
    rc: int
    stdout: str
    seconds: float
    reports: dict[str, dict]
    rollout: dict | None


@dataclass
class Fleet:
    cluster: object
    tmp: Path
    size: int = 8
    databases: dict = field(default_factory=dict)

    def __post_init__(self):
        template = prepared_database(self.cluster, 2)
        for i in range(1, self.size + 1):
            self.databases[f"tenant-{i}"] = self.cluster.create_database(template=template)
        self.app = PrismaApp.copy_to(self.tmp / "app")

    @property
    def hosts(self) -> list[str]:
        return list(self.databases)

    @property
    def backup_dir(self) -> Path:
        return self.tmp / "backups"

    @property
    def report_dir(self) -> Path:
        return self.tmp / "reports"

    def inventory(self, extra: dict | None = None) -> Path:
        """The fleet as an inventory (JSON is YAML): one host per tenant, a local connection."""
        url = "{{ lookup('ansible.builtin.env', 'FLEET_URL_' ~ (inventory_hostname | upper | replace('-', '_'))) }}"
        doc = {
            "all": {
                "children": {
                    "prisma_databases": {
                        "hosts": {host: {} for host in self.hosts},
                        "vars": {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                            "database_url": url,
                            **deployment_variables(self.app, self.tmp),
                            **(extra or {}),
                        },
                    }
                }
            }
        }
        path = self.tmp / "fleet.yml"
        path.write_text(json.dumps(doc, indent=1))
        return path

    def applied(self, host: str) -> list[str]:
        return applied_migrations(self.databases[host])

    def digest(self, host: str) -> str:
        """An md5 of every row of every table of the tenant's schema."""
        [(value,)] = self.databases[host].query(
            "SELECT md5(string_agg(t, '|' ORDER BY t)) FROM ("
            " SELECT 'producers' || p::text AS t FROM producers p UNION ALL"
            " SELECT 'products' || p::text FROM products p UNION ALL"
            " SELECT 'orders' || o::text FROM orders o UNION ALL"
            " SELECT 'order_items' || i::text FROM order_items i UNION ALL"
            " SELECT 'migrations' || m.migration_name || coalesce(m.finished_at::text, '') FROM _prisma_migrations m) s"
        )
        return value

    def snapshots(self, host: str) -> list[Path]:
        name = self.databases[host].name
        return sorted(self.backup_dir.glob(f"{name}-*.dump")) if self.backup_dir.exists() else []

    def run(
        self,
        extra: dict | None = None,
        forks: int | None = None,
        confirm: str | None = PHRASE,
        inventory_vars: dict | None = None,
    ) -> FleetRun:
        variables = dict(extra or {})
        if confirm is not None:
            variables["confirm"] = confirm
        vars_file = self.tmp / f"vars-{time.monotonic_ns()}.json"
        vars_file.write_text(json.dumps(variables))
        argv = [
            str(Path(sys.executable).parent / "ansible-playbook"),
            "-i",
            str(self.inventory(inventory_vars)),
            "playbooks/migrate.yml",
            "-e",
            f"@{vars_file}",
        ] + (["--forks", str(forks)] if forks else [])
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env.update(
            ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
            ANSIBLE_NOCOLOR="1",
            PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
        )
        env.update({env_name(host): db.url() for host, db in self.databases.items()})
        before = set(self.report_dir.glob("*.json")) if self.report_dir.exists() else set()
        start = time.monotonic()
        proc = subprocess.run(
            argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False
        )
        seconds = time.monotonic() - start
        new = sorted(set(self.report_dir.glob("*.json")) - before) if self.report_dir.exists() else []
        reports, rollout = {}, None
        for path in new:
            data = json.loads(path.read_text())
            if path.name.endswith("-rollout.json"):
                rollout = data
            else:
                reports[data["target"]] = data
        return FleetRun(proc.returncode, proc.stdout + proc.stderr, seconds, reports, rollout)
