"""Every module's documentation renders with ansible-doc and matches its argument_spec."""

import ast
import importlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[4]
MODULES = sorted(p.stem for p in (ROOT / "plugins" / "modules").glob("*.py"))
# every module but those that never connect with the URL (prisma_pgbackrest runs on the database host)
URL_MODULES = [
    m for m in MODULES if "connection_argument_spec" in (ROOT / "plugins" / "modules" / f"{m}.py").read_text()
]
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"
FRAGMENT = "prisma_connection"


@pytest.fixture(scope="module")
def docs():
    proc = subprocess.run(
        [str(ANSIBLE_DOC), "-M", str(ROOT / "plugins" / "modules"), "--json", *MODULES],
        capture_output=True,
        text=True,
        cwd=ROOT,  # the project's ansible.cfg, for doc_fragment_plugins
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def source(name: str) -> ast.Module:
    return ast.parse((ROOT / "plugins" / "modules" / f"{name}.py").read_text())


def argument_spec(name: str) -> dict:
    """The option names (with those of their suboptions) of the argument_spec given
    to AnsibleModule in the module's source."""
    tree = source(name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule":
            for keyword in node.keywords:
                if keyword.arg == "argument_spec":
                    return options(keyword.value, tree)
    raise AssertionError(f"{name}: no literal argument_spec")


def options(spec: ast.Dict, tree: ast.Module) -> dict:
    names = {}
    for key, value in zip(spec.keys, spec.values):
        if key is None:  # **shared_spec(): a helper from module_utils
            names.update(spec_names(shared_spec(value, tree)))
            continue
        sub = next((v for k, v in zip(value.keys, value.values) if ast.literal_eval(k) == "options"), None)
        names[ast.literal_eval(key)] = options(sub, tree) if sub is not None else {}
    return names


def shared_spec(call: ast.expr, tree: ast.Module) -> dict:
    """Call the module_utils function a module unpacks into its argument_spec
    (module_utils are plain Python: tests/unit/conftest.py puts them on sys.path)."""
    assert isinstance(call, ast.Call), ast.unparse(call)
    assert isinstance(call.func, ast.Name), ast.unparse(call)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(alias.name == call.func.id for alias in node.names):
            module = importlib.import_module(node.module.rsplit(".", 1)[-1])
            return getattr(module, call.func.id)()
    raise AssertionError(f"{call.func.id} is not imported from module_utils")


def spec_names(spec: dict) -> dict:
    return {name: spec_names(opt.get("options") or {}) for name, opt in spec.items()}


def documented(doc_options: dict) -> dict:
    return {name: documented(opt.get("suboptions", {})) for name, opt in doc_options.items()}


def own_documentation(name: str) -> dict:
    """The module's DOCUMENTATION, before ansible-doc merges the fragment into it."""
    for node in source(name).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "DOCUMENTATION":
            return yaml.safe_load(node.value.value)
    raise AssertionError(f"{name}: no DOCUMENTATION")


@pytest.mark.parametrize("name", MODULES)
def test_docs_render_and_match_the_argument_spec(docs, name):
    assert MODULES, "no modules found"
    doc = docs[name]
    assert doc["doc"]["short_description"]
    assert doc["examples"].strip()
    assert doc["return"], f"{name}: RETURN is empty"
    assert documented(doc["doc"]["options"]) == argument_spec(name)


@pytest.mark.parametrize("name", URL_MODULES)
def test_connection_options_come_from_the_fragment_and_the_shared_spec(name):
    from prisma_connection import connection_argument_spec

    own = own_documentation(name)
    assert own.get("extends_documentation_fragment") == [FRAGMENT]
    assert not set(own["options"]) & set(connection_argument_spec()), "connection options documented again"
    tree = source(name)
    spec_call = next(
        kw.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "AnsibleModule"
        for kw in node.keywords
        if kw.arg == "argument_spec"
    )
    shared = [value.func.id for key, value in zip(spec_call.keys, spec_call.values) if key is None]
    assert shared == ["connection_argument_spec"], f"{name}: argument_spec does not unpack connection_argument_spec()"


def test_the_fragment_documents_exactly_the_shared_spec():
    from prisma_connection import connection_argument_spec

    path = ROOT / "plugins" / "doc_fragments" / f"{FRAGMENT}.py"
    loader = importlib.util.spec_from_file_location(f"doc_fragment_{FRAGMENT}", path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    fragment = module.ModuleDocFragment
    documented_options = yaml.safe_load(fragment.DOCUMENTATION)["options"]
    spec = connection_argument_spec()
    assert set(documented_options) == set(spec)
    for option, opt in spec.items():
        assert documented_options[option]["type"] == opt["type"]
    assert spec["database_url"]["no_log"] is True


def test_the_free_space_margin_is_documented_as_the_constant(docs):
    from prisma_snapshots import SPACE_MARGIN

    for name in ("prisma_snapshot", "prisma_database_info"):
        assert docs[name]["doc"]["options"]["min_free_ratio"]["default"] == SPACE_MARGIN, name
