"""The playbooks are the only place where stages meet (issue 15): checked on the source, so that a
change that couples two roles again fails here, not in review."""

import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())
SOURCES = sorted(
    p
    for p in [*(ROOT / "roles").rglob("*"), *(ROOT / "playbooks").rglob("*")]
    if p.suffix in (".yml", ".j2") and p.is_file()
)


def owner(path: Path) -> str:
    rel = path.relative_to(ROOT)
    return rel.parts[1] if rel.parts[0] == "roles" else Path(rel.parts[-1]).stem


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_registered_variables_are_read_only_where_they_are_registered(path):
    """`__<role>_*` (roles) and `__<playbook>_*` (playbooks) never leave their file's role or playbook."""
    mine = owner(path)
    prefix = "rehearse" if mine == "rehearse" else mine
    strangers = sorted(
        {v for v in re.findall(r"\b__([a-z][a-z0-9_]*)", path.read_text()) if not v.startswith(prefix + "_")}
    )
    assert strangers == [], f"{path.relative_to(ROOT)} reads another role's registered variables"


@pytest.mark.parametrize("role", ROLES)
def test_role_defaults_are_literals(role):
    """No role default names another role's result or a public input: the playbook passes them."""
    defaults = ROOT / "roles" / role / "defaults" / "main.yml"
    text = defaults.read_text() if defaults.exists() else ""
    assert "{{" not in text, f"roles/{role}/defaults/main.yml holds a template"


@pytest.mark.parametrize("role", ROLES)
def test_a_role_reads_no_other_roles_result(role):
    """Outside prisma_run's finish (which gets them from the playbook as prisma_run_stages), a role reads
    only its own <role>_result."""
    others = [r for r in ROLES if r != role]
    text = "\n".join(p.read_text() for p in (ROOT / "roles" / role).rglob("*") if p.suffix in (".yml", ".j2"))
    text = re.sub(r"#.*", "", text)  # comments may name them
    text = re.sub(r"(?s)description:.*?(?=\n\s*\w+:)", "", text)  # so may the argument spec
    found = sorted({r for r in others if re.search(rf"\b{r}_result\b", text)})
    assert found == [], f"roles/{role} reads {found}"


def test_the_url_is_resolved_in_one_place():
    hits = [
        str(p.relative_to(ROOT))
        for p in SOURCES
        if re.search(r"lookup\('ansible\.builtin\.env', '(REHEARSAL_)?DATABASE_URL'\)", p.read_text())
    ]
    assert hits == ["roles/prisma_run/tasks/main.yml"]


def test_no_module_reads_the_url_from_its_environment():
    for path in sorted((ROOT / "plugins").rglob("*.py")):
        text = path.read_text()
        assert not re.search(r"environ(\.get\(|\[)\s*[\"']DATABASE_URL", text), path.relative_to(ROOT)


@pytest.mark.parametrize("playbook", sorted((ROOT / "playbooks").glob("*.yml")), ids=lambda p: p.name)
def test_no_playbook_forges_a_role_result(playbook):
    """A playbook sets facts of its own only (the rollout plan): never a role's result or the gate."""

    def set_facts(tasks):
        for task in tasks or []:
            if isinstance(task, dict):
                for key in ("block", "rescue", "always", "tasks"):
                    yield from set_facts(task.get(key))
                if "ansible.builtin.set_fact" in task:
                    yield from task["ansible.builtin.set_fact"]

    plays = yaml.safe_load(playbook.read_text())
    names = {name for play in plays for name in set_facts(play.get("tasks"))}
    assert not {n for n in names if n.endswith("_result") or n.startswith(("confirm_gate", "prisma_run"))}, names
