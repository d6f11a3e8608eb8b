"""Every module's documentation renders with ansible-doc and matches its argument_spec."""

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"


@pytest.fixture(scope="module")
def docs():
    proc = subprocess.run(
        [str(ANSIBLE_DOC), "-M", str(ROOT / "plugins" / "modules"), "--json", *MODULES],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def argument_spec(name: str) -> dict:
    """The option names (with those of their suboptions) of the argument_spec given
    to AnsibleModule in the module's source."""
    tree = ast.parse((ROOT / "plugins" / "modules" / f"{name}.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule":
            for keyword in node.keywords:
                if keyword.arg == "argument_spec":
                    return options(keyword.value)
    raise AssertionError(f"{name}: no literal argument_spec")


def options(spec: ast.Dict) -> dict:
    names = {}
    for key, value in zip(spec.keys, spec.values):
        sub = next((v for k, v in zip(value.keys, value.values) if ast.literal_eval(k) == "options"), None)
        names[ast.literal_eval(key)] = options(sub) if sub is not None else {}
    return names


def documented(doc_options: dict) -> dict:
    return {name: documented(opt.get("suboptions", {})) for name, opt in doc_options.items()}


@pytest.mark.parametrize("name", MODULES)
def test_docs_render_and_match_the_argument_spec(docs, name):
    assert MODULES, "no modules found"
    doc = docs[name]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip()
    assert doc["return"], f"{name}: RETURN is empty"
    assert documented(doc["doc"]["options"]) == argument_spec(name)
