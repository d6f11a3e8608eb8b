"""scripts/role_docs.py: a role's argument spec is its whole interface, and the drift check says where not."""

import importlib.util
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
_spec = importlib.util.spec_from_file_location("role_docs", ROOT / "scripts" / "role_docs.py")
role_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(role_docs)


def spec(**options) -> dict:
    return {"argument_specs": {"main": {"options": options}}}


def test_the_roles_of_this_project_do_not_drift():
    for role in sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()):
        data = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())
        defaults_file = role / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
        assert role_docs.drift(role.name, data, defaults) == [], role.name


@pytest.mark.parametrize(
    ("options", "defaults", "problem"),
    [
        ({"r_x": {"type": "int", "default": 5}}, {"r_x": 6}, "r_x defaults to 6 but the spec says 5"),
        ({"r_x": {"type": "float", "default": 1.2}}, {"r_x": 1.0}, "r_x defaults to 1.0 but the spec says 1.2"),
        ({"r_x": {"type": "str", "default": "5"}}, {"r_x": 5}, "r_x defaults to 5 but the spec says '5'"),
        ({"r_x": {"type": "int", "default": True}}, {"r_x": True}, "r_x defaults to True, not of type int"),
        ({"r_x": {"type": "str", "required": True}}, {"r_x": "a"}, "defaults/main.yml sets r_x, a required option"),
        (
            {"r_x": {"type": "str", "required": True, "default": "a"}},
            {},
            "r_x is required and has a default in the spec",
        ),
        ({"r_x": {"type": "str", "default": "a"}}, {}, "r_x has no default in defaults/main.yml"),
        ({}, {"r_y": 1}, "defaults/main.yml sets r_y, without a spec entry"),
        (
            {"r_x": {"type": "str", "default": "{{ other_result.path }}"}},
            {"r_x": "{{ other_result.path }}"},
            "r_x defaults to a template",
        ),
    ],
)
def test_drift_is_found(options, defaults, problem):
    problems = role_docs.drift("r", spec(**options), defaults)
    assert any(problem in p for p in problems), problems


def test_an_option_shared_by_entry_points_must_be_specified_alike():
    data = {
        "argument_specs": {
            "main": {"options": {"r_x": {"type": "str", "default": "a"}}},
            "other": {"options": {"r_x": {"type": "str", "default": "b"}}},
        }
    }
    assert "r: option r_x differs between entry points (other)" in role_docs.drift("r", data, {"r_x": "a"})


def test_a_role_in_step_with_its_spec_passes():
    options = {
        "r_a": {"type": "str", "required": True},
        "r_b": {"type": "dict", "default": {}},
        "r_c": {"type": "dict", "default": None},
    }
    assert role_docs.drift("r", spec(**options), {"r_b": {}, "r_c": None}) == []
