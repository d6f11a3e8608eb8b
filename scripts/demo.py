"""`make demo`: migrate a throwaway database end to end with playbooks/migrate.yml.

Starts a throwaway PostgreSQL cluster, deploys the fixture app's first two
migrations with sample rows (an older production, in effect), then runs the
playbook on inventories/local non-interactively, prints where the report is,
and deletes the cluster. Prints the exact command it runs (password masked).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from pgcluster import PgCluster  # noqa: E402
from prismaapp import PrismaApp, fixture, offline_env  # noqa: E402

WORK = ROOT / ".cache" / "demo"
SAMPLE_ROWS = """
INSERT INTO producers (name, email, region) VALUES
  ('Meli Kritis', 'meli@example.gr', 'Crete'),
  ('Elaia Messinias', 'elaia@example.gr', 'Messinia');
INSERT INTO products (producer_id, name, price_cents) VALUES
  (1, 'Thyme Honey 500g', 1250), (1, 'Pine Honey 250g', 790), (2, 'Extra Virgin Olive Oil 1L', 1490);
INSERT INTO orders (customer_email) VALUES ('nikos@example.gr');
INSERT INTO order_items (order_id, product_id, quantity) VALUES (1, 1, 2), (1, 3, 1);
"""


def main() -> int:
    shutil.rmtree(WORK / "app", ignore_errors=True)
    WORK.mkdir(parents=True, exist_ok=True)
    with PgCluster() as cluster:
        db = cluster.create_database("shop")
        old = PrismaApp.copy_to(WORK / "app")
        old.keep_only(2)
        res = old.prisma("migrate", "deploy", database_url=db.url())
        if res.rc != 0:
            print(res.output, file=sys.stderr)
            return 1
        db.execute(SAMPLE_ROWS)
        shutil.rmtree(WORK / "app")
        app = PrismaApp.copy_to(WORK / "app")  # the new release: three migrations pending
        print(f"demo: throwaway PostgreSQL on 127.0.0.1:{cluster.port}, database shop at migration 2 of 5, 3 products")

        extra = {
            "prisma_project_dir": str(app.path),
            "prisma_env": offline_env(app.path),
            "backup_dir": str(WORK / "backups"),
            "report_dir": str(ROOT / "reports" / "demo"),
            "confirm": "DIXIS-PROD-OK",
        }
        vars_file = WORK / "demo-vars.json"
        import json

        vars_file.write_text(json.dumps(extra))
        cmd = [
            str(ROOT / ".venv" / "bin" / "ansible-playbook"),
            "-i",
            "inventories/local",
            "playbooks/migrate.yml",
            "-e",
            f"@{vars_file.relative_to(ROOT)}",
        ]
        shown = db.url().replace(db.password, "********")
        print(
            f"demo: DATABASE_URL='{shown}' .venv/bin/ansible-playbook {' '.join(cmd[1:])}  (confirm=DIXIS-PROD-OK in the vars file)"
        )
        env = dict(os.environ, DATABASE_URL=db.url(), ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
        proc = subprocess.run(cmd, cwd=ROOT, env=env, check=False)
        rows = db.query("SELECT slug FROM products ORDER BY id")
        print(f"demo: products after the run: {[r[0] for r in rows]}")
        reports = sorted((ROOT / "reports" / "demo").glob("*.md"))
        if reports:
            print(f"demo: report: {reports[-1]}")
        print(
            f"demo: fixture app used: {fixture().relative_to(ROOT)} (Prisma {app.version}); the cluster is deleted now"
        )
        return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
