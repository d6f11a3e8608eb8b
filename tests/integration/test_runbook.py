"""docs/runbook.md stays true: its local walkthrough runs as written, and every
failure message it quotes is one the project really prints."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from playbook_target import ROOT, make_target
from prismaapp import MIGRATIONS

RUNBOOK = (ROOT / "docs" / "runbook.md").read_text()


def local_commands() -> list[str]:
    """Every command of a ```sh block that runs against inventories/local, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", RUNBOOK, re.S)
    return [line for block in blocks for line in block.splitlines() if "-i inventories/local" in line]


def quoted_messages() -> list[str]:
    troubleshooting = RUNBOOK.split("## 8. Troubleshooting", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```text\n(.*?)```", troubleshooting, re.S)]


def project_text() -> str:
    """The project's messages as one string: whitespace collapsed, split string literals joined."""
    files = [*ROOT.glob("plugins/**/*.py"), *ROOT.glob("roles/**/*.yml"), *ROOT.glob("roles/**/*.j2")]
    files += [*ROOT.glob("playbooks/**/*.yml"), *ROOT.glob("playbooks/**/*.j2")]
    text = " ".join(p.read_text() for p in files)
    text = re.sub(r'"\s+f?"', "", text)  # "first part" f" second part" -> one literal
    return re.sub(r"\s+", " ", text)


def test_every_quoted_failure_message_is_printed_by_the_project():
    source = project_text()
    messages = quoted_messages()
    assert len(messages) >= 15
    for message in messages:
        fragments = [f.strip(" .,:;()-") for f in re.split(r"<[^>]+>|: ", message)]
        checked = [f for f in fragments if len(f) >= 12]
        assert checked, f"nothing checkable in: {message}"
        missing = [f for f in checked if f not in source]
        assert not missing, f"runbook message not found in the source: {missing} (from: {message})"


def test_local_walkthrough_runs_as_written(tmp_path, database):
    target = make_target(tmp_path, database)
    commands = local_commands()
    assert len(commands) == 4
    # The fixture's offline Prisma settings and throwaway folders, as an inventory would give them.
    fixture = {k: v for k, v in target.variables().items() if k != "prisma_project_dir"}
    fixture_vars = tmp_path / "fixture-vars.json"
    fixture_vars.write_text(json.dumps(fixture))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        DATABASE_URL=target.db.url(),
        APP_DIR=str(target.app.path),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
        PATH=f"{Path(sys.executable).parent}:{env['PATH']}",
    )
    states = []
    for command in commands:
        proc = subprocess.run(
            ["bash", "-c", f"{command} -e @{fixture_vars}"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}"
        assert target.db.password not in proc.stdout + proc.stderr
        states.append(target.applied())
    # plan only, migrate, nothing pending, rollback to the snapshot
    assert states == [MIGRATIONS[:2], MIGRATIONS, MIGRATIONS, MIGRATIONS[:2]]
