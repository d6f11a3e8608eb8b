"""scripts/audited-run refuses what would put a secret into the audit trail, before doing anything."""

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "audited-run"


@pytest.mark.parametrize("variable", ["DATABASE_URL", "REHEARSAL_DATABASE_URL", "PGPASSWORD"])
def test_refuses_a_secret_in_the_environment(tmp_path, variable):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REHEARSAL_DATABASE_URL", "PGPASSWORD")}
    env.update({variable: "postgresql://app:s3cret-value@db/app", "AUDIT_DIR": str(tmp_path / "audit")})
    proc = subprocess.run(
        [str(SCRIPT), "inventories/local", "migrate.yml"], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"audited-run: ERROR: {variable} is set:")
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "s3cret-value" not in proc.stdout + proc.stderr
    assert not (tmp_path / "audit").exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        ([], "usage: scripts/audited-run"),
        (["nowhere", "migrate.yml"], "no inventory"),
        (["inventories/local", "x.yml"], "no playbook"),
    ],
)
def test_bad_arguments_get_one_line(argv, says):
    proc = subprocess.run([str(SCRIPT), *argv], capture_output=True, text=True, check=False)
    assert proc.returncode == 2
    assert says in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
