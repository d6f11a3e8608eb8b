"""The manual GitHub Actions workflow: its gate, its secret check and its concurrency.

The two guard steps are run for real with bash, with the inputs GitHub would give them.
"""

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = yaml.safe_load((ROOT / ".github/workflows/prod-migration.yml").read_text())
STEPS = WORKFLOW["jobs"]["migrate"]["steps"]
# The phrase the gate compares with: the role's default, and the public input's default that prisma_run resolves.
PHRASE = yaml.safe_load((ROOT / "roles/confirm_gate/defaults/main.yml").read_text())["confirm_gate_phrase"]
assert f"confirm_phrase | default('{PHRASE}')" in (ROOT / "roles/prisma_run/tasks/main.yml").read_text()


def run_step(step: dict, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=False)


def test_runs_only_by_hand_with_a_required_confirm_input():
    triggers = WORKFLOW.get("on", WORKFLOW.get(True))  # YAML 1.1 reads the key `on` as true
    assert list(triggers) == ["workflow_dispatch"]
    confirm = triggers["workflow_dispatch"]["inputs"]["confirm"]
    assert confirm["required"] is True
    assert confirm["type"] == "string"


def test_one_run_per_target_at_a_time_never_cancelled():
    concurrency = WORKFLOW["concurrency"]
    assert "PROD_DATABASE_NAME" in concurrency["group"]
    assert concurrency["cancel-in-progress"] is False


def test_the_phrase_is_checked_first_and_the_secret_before_any_checkout():
    first, second = STEPS[0], STEPS[1]
    assert first["env"] == {"CONFIRM": "${{ inputs.confirm }}"}
    assert second["env"] == {"DATABASE_URL": "${{ secrets.DATABASE_URL_PROD }}"}
    assert all("uses" not in step for step in STEPS[:2])


@pytest.mark.parametrize(
    ("answer", "ok"), [(PHRASE, True), (PHRASE.lower(), False), ("", False), (PHRASE + " ", False)]
)
def test_phrase_step_accepts_only_the_exact_phrase(answer, ok):
    result = run_step(STEPS[0], {"CONFIRM": answer, "PATH": "/usr/bin:/bin"})
    assert (result.returncode == 0) is ok
    if not ok:
        assert result.stdout.startswith("::error::")
        assert "Nothing was changed" in result.stdout


@pytest.mark.parametrize(("value", "ok"), [("", False), ("postgresql://u:p@h/db", True)])
def test_secret_step_fails_clearly_without_the_secret(value, ok):
    result = run_step(STEPS[1], {"DATABASE_URL": value, "PATH": "/usr/bin:/bin"})
    assert (result.returncode == 0) is ok
    assert result.stdout.startswith("::error::Secret DATABASE_URL_PROD is not set") is not ok
    assert value == "" or value not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("repository", "database", "ok"), [("org/app", "app", True), ("", "app", False), ("org/app", "", False)]
)
def test_variables_step_needs_the_app_repository_and_the_identity_pin(repository, database, ok):
    step = next(step for step in STEPS if step["name"] == "Check the repository variables")
    assert STEPS.index(step) < next(i for i, s in enumerate(STEPS) if "uses" in s)
    result = run_step(step, {"APP_REPOSITORY": repository, "PROD_DATABASE_NAME": database, "PATH": "/usr/bin:/bin"})
    assert (result.returncode == 0) is ok


def test_secret_reaches_the_playbook_only_through_the_environment():
    migrate = next(step for step in STEPS if "playbooks/migrate.yml" in step.get("run", ""))
    assert migrate["env"]["DATABASE_URL"] == "${{ secrets.DATABASE_URL_PROD }}"
    assert all("secrets." not in step.get("run", "") for step in STEPS)
    assert "-e confirm=" in migrate["run"]
    assert '-e allow_destructive="$ALLOW_DESTRUCTIVE"' in migrate["run"]
    assert '-e allow_blocking="$ALLOW_BLOCKING"' in migrate["run"]
    assert '-e max_blocking_seconds="$MAX_BLOCKING_SECONDS"' in migrate["run"]
    assert '-e wait_for_blockers="$WAIT_FOR_BLOCKERS"' in migrate["run"]  # an input reaches the playbook as data
    assert migrate["env"]["ALLOW_BLOCKING"] == "${{ inputs.allow_blocking }}"
    assert 'prisma_project_dir="$GITHUB_WORKSPACE/app"' in migrate["run"]


def test_report_is_kept_whatever_happens():
    summary = next(step for step in STEPS if "GITHUB_STEP_SUMMARY" in step.get("run", ""))
    upload = next(step for step in STEPS if step.get("uses", "").startswith("actions/upload-artifact"))
    assert summary["if"] == upload["if"] == "always()"
    # this run's own folder, never a report left in a reused workspace
    assert upload["with"]["path"] == "${{ runner.temp }}/report-${{ github.run_id }}-${{ github.run_attempt }}/"
    migrate = next(step for step in STEPS if "playbooks/migrate.yml" in step.get("run", ""))
    assert 'report_dir="$RUNNER_TEMP/report-$GITHUB_RUN_ID-$GITHUB_RUN_ATTEMPT"' in migrate["run"]
