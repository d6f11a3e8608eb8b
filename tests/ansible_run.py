"""Run a small playbook through ansible-playbook from the repo root (so the
project's ansible.cfg, modules and filters are used) and return the results
of each task, read from the ansible.posix.json callback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


@dataclass
class PlaybookRun:
    rc: int
    stdout: str
    stderr: str
    results: dict  # task name -> result for localhost

    def __getitem__(self, task: str) -> dict:
        return self.results[task]


def run_tasks(tmp_path: Path, tasks: list[dict], env: dict | None = None, timeout: int = 300) -> PlaybookRun:
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(yaml.safe_dump([{"name": "Test", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]))
    full_env = dict(os.environ)
    full_env.update(
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
        ANSIBLE_NOCOLOR="1",
        PATH=f"{VENV_BIN}{os.pathsep}{full_env.get('PATH', '')}",
    )
    full_env.update(env or {})
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(ROOT / "inventories" / "local"), str(playbook)],
        cwd=ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    try:
        data = json.loads(proc.stdout)
    except ValueError as exc:
        raise AssertionError(
            f"no JSON from ansible-playbook (rc {proc.returncode}): {proc.stdout}\n{proc.stderr}"
        ) from exc
    results = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            results[task["task"]["name"]] = task["hosts"].get("localhost", {})
    return PlaybookRun(proc.returncode, proc.stdout, proc.stderr, results)
