"""execution-environment.yml gives ansible-builder a build context with the pinned controller side."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILDER = shutil.which("ansible-builder") or str(Path(sys.executable).parent / "ansible-builder")


def pinned(name: str) -> str:
    return re.search(rf"^{re.escape(name)}==\S+", (ROOT / "requirements.txt").read_text(), re.M).group(0)


@pytest.fixture(scope="module")
def context(tmp_path_factory) -> Path:
    ctx = tmp_path_factory.mktemp("ee") / "context"
    proc = subprocess.run(
        # --output-filename is pinned: without it ansible-builder names the file after
        # the container runtime it finds on PATH (Dockerfile when only docker is there).
        [
            BUILDER,
            "create",
            "-f",
            str(ROOT / "execution-environment.yml"),
            "--context",
            str(ctx),
            "--output-filename",
            "Containerfile",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return ctx


def test_containerfile_installs_the_pinned_ansible_core_and_runner(context):
    containerfile = (context / "Containerfile").read_text()
    assert pinned("ansible-core") in containerfile
    assert pinned("ansible-runner") in containerfile
    assert "dnf module enable -y postgresql:15" in containerfile


def test_system_packages_include_the_postgresql_client(context):
    bindep = (context / "_build" / "bindep.txt").read_text()
    assert "postgresql [platform:rpm]" in bindep


def test_the_controller_s_sql_reading_tools_are_pinned_as_in_requirements(context):
    """prisma_migration_plan runs on the controller, in the EE under AWX: pglast and squawk-cli must be in it."""
    requirements = (context / "_build" / "requirements.txt").read_text()
    assert pinned("pglast") in requirements
    assert pinned("squawk-cli") in requirements
