"""The project as an ansible-runner project (the engine of AWX): migrate.yml
driven through ansible_runner.run, asserted on its job events and artifacts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import ansible_runner
import pytest
from playbook_target import PHRASE, ROOT, make_target
from prismaapp import MIGRATIONS


def encrypted_vars(path: Path, variables: dict, key_file: Path) -> Path:
    """An ansible-vault file made from stdin: the plaintext never touches disk."""
    key_file.write_text("runner-test-vault-key\n")
    key_file.chmod(0o600)
    ansible_vault = str(Path(sys.executable).parent / "ansible-vault")
    proc = subprocess.run(
        [ansible_vault, "encrypt", "--vault-password-file", str(key_file), "--output", str(path), "-"],
        input=json.dumps(variables),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return path


@pytest.fixture
def target(tmp_path, database):
    return make_target(tmp_path, database)


def test_migrate_through_ansible_runner_keeps_an_audit_trail_without_the_secret(target, tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    secret = target.db.password
    audit = tmp_path / "audit"
    audit.mkdir(mode=0o700)
    key = tmp_path / "vault-key"
    vault = encrypted_vars(tmp_path / "vault.yml", {"database_url": target.db.url()}, key)
    report_dir = audit / "artifacts" / "migrate-1" / "report"

    run = ansible_runner.run(
        private_data_dir=str(audit),
        project_dir=str(ROOT),
        playbook="playbooks/migrate.yml",
        inventory=str(ROOT / "inventories" / "local"),
        ident="migrate-1",
        extravars=target.variables({"confirm": PHRASE, "report_dir": str(report_dir), "run_id": "migrate-1"}),
        cmdline=f"-e @{vault} --vault-password-file {key}",
        envvars={"ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin"},
        quiet=True,
    )

    assert (run.status, run.rc) == ("successful", 0), run.stdout.read()[-3000:]
    assert target.applied() == MIGRATIONS

    ran = {e["event_data"].get("task") for e in run.events if e["event"] in ("runner_on_ok", "runner_on_changed")}
    skipped = {e["event_data"].get("task") for e in run.events if e["event"] == "runner_on_skipped"}
    changed = {
        e["event_data"]["task"]
        for e in run.events
        if e["event"] == "runner_on_ok" and e["event_data"]["res"].get("changed")
    }
    deploy = "Run prisma generate, then prisma migrate deploy"
    assert {deploy, "Assert prisma migrate status says up to date", "Assert every validation check passed"} <= ran
    assert deploy in changed
    assert "Ask for the confirmation phrase" in skipped  # confirm was given: no prompt
    assert "Stop with what to do next" in skipped
    for event in run.events:
        assert secret not in json.dumps(event), event["event"]

    # The audit trail: stdout, every job event, the exit status, and the report.
    trail = audit / "artifacts" / "migrate-1"
    assert (trail / "rc").read_text() == "0"
    assert (trail / "status").read_text() == "successful"
    assert len(list((trail / "job_events").glob("*.json"))) == len(list(run.events))
    report = json.loads(next(report_dir.glob("*.json")).read_text())
    assert report["result"] == "migrated"
    assert report["applied"] == MIGRATIONS[2:]
    leaked = [p for p in audit.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == []


def test_audited_run_keeps_the_trail_of_a_cli_run(target, tmp_path, monkeypatch):
    """scripts/audited-run: ansible-runner's CLI with this repository as the project."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    secret = target.db.password
    audit = tmp_path / "audit"
    key = tmp_path / "vault-key"
    vault = encrypted_vars(tmp_path / "vault.yml", {"database_url": target.db.url()}, key)
    fixture_vars = tmp_path / "fixture-vars.json"
    fixture_vars.write_text(json.dumps({k: v for k, v in target.variables().items() if k != "report_dir"}))
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(AUDIT_DIR=str(audit), PATH=f"{Path(sys.executable).parent}:{env['PATH']}")
    argv = [str(ROOT / "scripts" / "audited-run"), "inventories/local", "migrate.yml"]
    argv += ["-e", f"@{fixture_vars}", "-e", f"@{vault}", "--vault-password-file", str(key), "-e", f"confirm={PHRASE}"]
    proc = subprocess.run(
        argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False
    )

    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    assert target.applied() == MIGRATIONS
    (trail,) = (audit / "artifacts").iterdir()
    assert trail.name.endswith("-migrate")
    assert (trail / "rc").read_text() == "0"
    assert json.loads(next((trail / "report").glob("*.json")).read_text())["result"] == "migrated"
    assert f"artifacts of this run: {trail}" in proc.stdout
    leaked = [p for p in audit.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
    assert leaked == []
    assert secret not in proc.stdout + proc.stderr
