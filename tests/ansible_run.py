"""Run a small playbook through ansible-playbook from the repo root (so the
project's ansible.cfg, modules and filters are used) and return the results
of each task, read from the ansible.posix.json callback."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
MODULES_DIR = ROOT / "plugins" / "modules"
# What Ansible adds to a module's result, as the ansible.posix.json callback shows it.
ANSIBLE_KEYS = frozenset(
    {"changed", "failed", "msg", "skipped", "invocation", "warnings", "deprecations", "exception",
     "_ansible_no_log", "action", "stdout_lines", "stderr_lines"}
)  # fmt: skip
# The file's attributes AnsibleModule.add_path_info adds when a result's path exists.
PATH_INFO_KEYS = frozenset({"uid", "gid", "owner", "group", "mode", "state", "size", "secontext"})


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


def return_keys(module: str) -> set[str]:
    """The keys the module's RETURN documents, read with yaml from its source."""
    for node in ast.parse((MODULES_DIR / f"{module}.py").read_text()).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "RETURN":
            return set(yaml.safe_load(node.value.value))
    raise AssertionError(f"{module}: no RETURN")


def assert_result_keys(module: str, result: dict, *, failed: bool) -> None:
    """The module ran (no crash, no traceback), failed or not as expected, and returned exactly
    the keys of its RETURN besides Ansible's own."""
    assert "module_stderr" not in result, result.get("module_stderr")
    assert "Traceback" not in str(result.get("exception", "")), result["exception"]
    assert bool(result.get("failed")) is failed, result.get("msg")
    assert "\n" not in result.get("msg", ""), result["msg"]
    documented = return_keys(module)
    ansible = ANSIBLE_KEYS | (PATH_INFO_KEYS if result.get("path") else frozenset())
    returned = set(result) - (ansible - documented)
    assert returned == documented, (
        f"{module}: returned but not in RETURN {sorted(returned - documented)},"
        f" in RETURN but not returned {sorted(documented - returned)} (msg: {result.get('msg')})"
    )
