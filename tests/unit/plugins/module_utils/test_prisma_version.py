"""The Prisma CLI version is read from the checkout (issue 17): 5 to 7 run, 6 and 7 are tested, 8 and
anything older than 5 or unreadable are refused with one line that says what to do."""

from __future__ import annotations

import json

import pytest
from prisma_cli import CONFIG_FILE_CANDIDATES, config_problem, prisma_config_file, prisma_version


def checkout(tmp_path, version=None, text=None):
    package = tmp_path / "node_modules" / "prisma" / "package.json"
    package.parent.mkdir(parents=True)
    package.write_text(text if text is not None else json.dumps({"name": "prisma", "version": version}))
    return str(tmp_path)


@pytest.mark.parametrize(
    ("version", "supported", "tested"),
    [("7.10.1", True, True), ("6.19.3", True, True), ("7.0.0", True, True), ("5.22.0", True, False)],
)
def test_supported_majors_run(tmp_path, version, supported, tested):
    found = prisma_version(checkout(tmp_path, version))
    assert (found["version"], found["major"], found["supported"], found["tested"], found["msg"]) == (
        version, int(version.split(".")[0]), supported, tested, ""
    )  # fmt: skip


@pytest.mark.parametrize("version", ["8.0.0", "8.1.0-2.59be4fda12412a79eeb9c2ae727b6aa723593323", "9.0.0", "12.3.4"])
def test_prisma_8_and_later_are_refused_with_what_to_do(tmp_path, version):
    found = prisma_version(checkout(tmp_path, version))
    assert not found["supported"]
    assert "\n" not in found["msg"]
    assert f"Prisma {version}" in found["msg"]
    assert "has no 'migrate deploy'" in found["msg"]
    assert "pin prisma@7" in found["msg"]


@pytest.mark.parametrize("version", ["4.16.2", "2.30.0", "0.1.0"])
def test_prisma_older_than_5_is_refused(tmp_path, version):
    found = prisma_version(checkout(tmp_path, version))
    assert not found["supported"]
    assert not found["tested"]
    assert f"Prisma {version}, older than this project supports" in found["msg"]


@pytest.mark.parametrize(
    "text", ["", "not json", "[]", '{"name": "prisma"}', '{"version": 7}', '{"version": "latest"}']
)
def test_an_unreadable_version_is_refused_not_guessed(tmp_path, text):
    found = prisma_version(checkout(tmp_path, text=text))
    assert (found["version"], found["supported"]) == (None, False)
    assert found["msg"].startswith("cannot tell which Prisma CLI the checkout runs")
    assert "npm ci" in found["msg"]


def test_a_checkout_without_node_modules_is_refused(tmp_path):
    found = prisma_version(str(tmp_path))
    assert found["path"] == str(tmp_path / "node_modules" / "prisma" / "package.json")
    assert not found["supported"]
    assert "is missing" in found["msg"]


def test_the_fixture_apps_are_the_tested_majors():
    from pathlib import Path

    fixtures = Path(__file__).resolve().parents[3] / "fixtures"
    for app, major in (("prisma-app", 6), ("prisma7-app", 7)):
        if not (fixtures / app / "node_modules" / "prisma").is_dir():
            pytest.skip(f"{app} node packages are not installed: run make setup")
        found = prisma_version(str(fixtures / app))
        assert (found["major"], found["supported"], found["tested"]) == (major, True, True), found


# --- Prisma 7 reads its datasource URL only from a config file ------------------------------------------------


def test_prisma_7_without_a_config_file_is_refused_with_what_to_do(tmp_path):
    found = prisma_version(checkout(tmp_path, "7.10.1"))
    assert found["config_file"] is None
    problem = config_problem(found, str(tmp_path), "prisma")
    assert problem.startswith(f"the checkout runs Prisma 7.10.1 and has no prisma.config.ts in {tmp_path}:")
    assert "datasource: { url: env('DATABASE_URL') }" in problem
    assert "--config" in problem
    assert "\n" not in problem


@pytest.mark.parametrize(
    "name",
    ["prisma.config.ts", "prisma.config.mjs", "prisma7.config.ts", ".config/prisma.ts", "prisma.config/index.js"],
)
def test_any_config_file_prisma_7_loads_is_found(tmp_path, name):
    found = prisma_version(checkout(tmp_path, "7.10.1"))
    config = tmp_path / name
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text("export default {}\n")
    assert prisma_config_file(str(tmp_path)) == str(config)
    assert prisma_version(str(tmp_path))["config_file"] == str(config)
    assert config_problem(found, str(tmp_path), "prisma") == ""


def test_prisma_7_looks_for_its_own_name_first(tmp_path):
    checkout(tmp_path, "7.10.1")
    for name in ("prisma.config.ts", "prisma7.config.ts"):
        (tmp_path / name).write_text("export default {}\n")
    assert CONFIG_FILE_CANDIDATES[1] == "prisma7.config.ts"
    assert prisma_config_file(str(tmp_path)) == str(tmp_path / "prisma7.config.ts")


@pytest.mark.parametrize("command", ["prisma --config deploy/prisma.config.ts", "npx prisma --config=cfg.ts"])
def test_a_config_named_on_the_command_is_left_to_prisma(tmp_path, command):
    found = prisma_version(checkout(tmp_path, "7.10.1"))
    assert config_problem(found, str(tmp_path), command) == ""


@pytest.mark.parametrize("version", ["6.19.3", "5.22.0"])
def test_before_prisma_7_no_config_file_is_needed(tmp_path, version):
    found = prisma_version(checkout(tmp_path, version))
    assert config_problem(found, str(tmp_path), "prisma") == ""
