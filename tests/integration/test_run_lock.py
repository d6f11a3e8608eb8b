"""The run lock is real or it is refused (issue 16 F), against the throwaway cluster:

- a lock terminated with pg_terminate_backend mid-run stops migrate.yml before the deploy (nothing
  applied, one line saying what happened), and a lock lost while Prisma runs is reported by the
  release;
- a transaction-mode PgBouncer in front of the server (Debian's pgbouncer, started by the test) is
  refused for the lock and the snapshot, as is a URL with pgbouncer=true; a session-mode one is not;
- two acquisitions started at the same moment, 20 times: exactly one holds, the other names it -
  with the same owner too (two migrate.yml runs started in the same second have the same run id),
  which before this fix let both report "held" and both be refused at the deploy (a second full
  migrate.yml run with the first one's run id, started while the first holds the lock, is refused:
  test_migrate_playbook.py);
- a snapshot longer than the lease keeps the lock when it renews it (as over SSH), and a watched
  ansible-playbook keeps its lock past the lease.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from ansible_run import ROOT, run_tasks
from pgcluster import _free_port, wait_until
from playbook_target import PHRASE, assert_no_secret, make_target, no_advisory_locks
from prismaapp import MIGRATIONS

LOCK_SESSION = "application_name LIKE 'prisma-run-lock%%'"
URL = "{{ lookup('env', 'TEST_DATABASE_URL') }}"
MODULE = ROOT / "plugins" / "modules" / "prisma_run_lock.py"
MODULE_UTILS = ROOT / "plugins" / "module_utils"


def run_lock_holders(db) -> list[tuple]:
    """(server pid, application name) of every session holding an advisory lock in the database."""
    return db.query(
        "SELECT l.pid, a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'advisory' AND l.granted ORDER BY l.pid"
    )


def terminate_lock_sessions(db) -> int:
    [(count,)] = db.query(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
        " WHERE application_name LIKE 'prisma-run-lock%%' AND datname = current_database()"
    )
    return count


# --- a lost lock stops the run ----------------------------------------------------------------------


def test_a_lock_terminated_mid_run_stops_the_run_before_the_deploy(tmp_path, database):
    target = make_target(tmp_path, database)
    proc = target.start({"confirm": PHRASE})
    try:
        assert target.wait_for_session(LOCK_SESSION + " AND pid IN (SELECT pid FROM pg_locks WHERE granted"
                                       " AND locktype = 'advisory')", timeout=120, proc=proc)  # fmt: skip
        assert terminate_lock_sessions(database) == 1  # after the gate and the lock, before the deploy
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 2, out[-3000:]
    assert target.applied() == MIGRATIONS[:2]  # nothing migrated
    assert no_advisory_locks(database)
    [report] = [json.loads(p.read_text()) for p in target.report_dir.glob("*.json")]
    message = report["message"]
    assert "\n" not in message
    assert "was lost at 20" in message, message
    assert "(its database session ended: FATAL: terminating connection due to administrator command)" in message
    assert "run again from the beginning" in message
    assert message.lower().rstrip(".").endswith("nothing was migrated"), message
    # the snapshot (which renews the lease before and while it dumps) or the deploy's last check refused it
    assert report["failed_stage"].startswith("Dump the database") or "migrate deploy" in report["failed_stage"], report[
        "failed_stage"
    ]
    assert report["next_step"].startswith(("Nothing was migrated", "Nothing was changed")), report["next_step"]
    assert "Restore" not in report["next_step"]
    assert database.password not in out


def test_a_lock_lost_while_prisma_runs_is_reported_by_the_release_and_the_report(tmp_path, database):
    target = make_target(tmp_path, database)
    target.app.add_migration("20240301090000_slow", "SELECT pg_sleep(4);\n")
    proc = target.start({"confirm": PHRASE})
    try:
        assert target.wait_for_session(
            "query LIKE '%%pg_sleep(4)%%' AND pid <> pg_backend_pid()", timeout=180, proc=proc
        )
        assert terminate_lock_sessions(database) == 1
        out, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, out[-3000:]  # the deploy ran under Prisma's own lock and succeeded
    assert target.applied() == [*MIGRATIONS, "20240301090000_slow"]
    said = " ".join(out.split())  # the callback wraps long messages
    assert "The run lock was lost at 20" in said, out[-3000:]
    lost = said[said.index("The run lock was lost at 20") :]
    assert lost.split(") while this run held it")[0].endswith(
        "(its database session ended: FATAL: terminating connection due to administrator command"
    ), lost[:300]
    assert "held it: from then on another run could have started on this database" in lost
    assert "[WARNING]: run lock released; it had been lost at 20" in said
    assert no_advisory_locks(database)
    [report] = [json.loads(p.read_text()) for p in target.report_dir.glob("*.json")]
    assert report["result"] == "migrated"
    assert report["run_lock"]["lost_at"].startswith("20"), report["run_lock"]  # the report states it as a fact
    assert "administrator command" in report["run_lock"]["lost_reason"], report["run_lock"]


# --- PgBouncer --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pgbouncer(pg_cluster):
    """Debian's PgBouncer in front of the cluster: transaction mode for every database, session mode
    for ``session_<database>``. It authenticates with the role's SCRAM secret (no password on disk)."""
    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not os.path.exists(binary):
        pytest.skip("pgbouncer is not installed: run 'make setup' (Debian's pgbouncer package)")
    db = pg_cluster.create_database()
    db.execute(
        f"SET ROLE {db.user}; CREATE TABLE items (id serial PRIMARY KEY, name text); INSERT INTO items (name) VALUES ('a')"
    )
    folder = Path(
        tempfile.mkdtemp(prefix="pgbouncer-")
    )  # outside pytest's root-only folders: PgBouncer runs as postgres
    secret = pg_cluster.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{db.user}'").strip()
    port = _free_port()
    (folder / "userlist.txt").write_text(f'"{db.user}" "{secret}"\n')
    (folder / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"session_{db.name} = host=127.0.0.1 port={pg_cluster.port} dbname={db.name} pool_mode=session\n"
        f"* = host=127.0.0.1 port={pg_cluster.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = scram-sha-256\nauth_file = {folder}/userlist.txt\n"
        "pool_mode = transaction\ndefault_pool_size = 4\n"
        f"logfile = {folder}/pgbouncer.log\npidfile = {folder}/pgbouncer.pid\n"
    )
    argv = [binary, str(folder / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        user = pwd.getpwnam("postgres")
        for path in (folder, folder / "userlist.txt", folder / "pgbouncer.ini"):
            os.chown(path, user.pw_uid, user.pw_gid)
        argv = ["runuser", "-u", "postgres", "--", *argv]
    folder.chmod(0o700)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        started = wait_until(lambda: (folder / "pgbouncer.pid").exists(), timeout=15)
        assert started, f"pgbouncer did not start: {proc.poll()} {(folder / 'pgbouncer.log').read_text()[-1000:]}"
        direct = db.url()
        yield {
            "db": db,
            "direct": direct,
            "transaction": direct.replace(f":{pg_cluster.port}/", f":{port}/"),
            "session": direct.replace(f":{pg_cluster.port}/{db.name}", f":{port}/session_{db.name}"),
        }
    finally:
        pid = int((folder / "pgbouncer.pid").read_text().strip()) if (folder / "pgbouncer.pid").exists() else None
        if pid:
            os.kill(pid, signal.SIGTERM)
        proc.wait(timeout=15)
        shutil.rmtree(folder, ignore_errors=True)
        pg_cluster.drop_database(db.name)


def run_pooler(tmp_path, url, via):
    """Take the lock, take a snapshot and release the lock through ``url``."""
    locks = str(tmp_path / "locks")
    tasks = [
        {"name": f"lock {via}", "prisma_run_lock": {"database_url": URL, "owner": f"run {via}", "state_dir": locks}},
        {"name": f"snapshot {via}", "prisma_snapshot": {"database_url": URL, "dest_dir": str(tmp_path / via)}},
        {"name": f"release {via}", "prisma_run_lock": {"state": "released", "owner": f"run {via}", "state_dir": locks}},
    ]
    return run_tasks(tmp_path, [{**t, "ignore_errors": True} for t in tasks], env={"TEST_DATABASE_URL": url})


@pytest.mark.parametrize("mode", ["transaction", "pgbouncer=true"])
def test_a_transaction_mode_pooler_is_refused_for_the_lock_and_the_snapshot(tmp_path, pgbouncer, mode):
    db = pgbouncer["db"]
    url = pgbouncer["transaction"] if mode == "transaction" else pgbouncer["direct"] + "&pgbouncer=true"
    out = run_pooler(tmp_path, url, "pooler")
    why = (
        "two sessions were served by the same server process"
        if mode == "transaction"
        else "the URL says pgbouncer=true"
    )
    for task, what in (
        ("lock pooler", "a session advisory lock held through it protects nothing"),
        ("snapshot pooler", "pg_dump's exported snapshot and the manifest's counts need one server session"),
    ):
        result = out[task]
        assert result["failed"] is True, result
        msg = result["msg"]
        assert msg.startswith("database_url goes through a transaction-mode connection pooler such as PgBouncer ("), msg
        assert why in msg, msg
        assert what in msg
        assert "give the direct database URL" in msg
        assert "\n" not in msg
        assert db.password not in out.stdout
    assert out["lock pooler"]["holder_pid"] is None
    assert not (tmp_path / "pooler").exists() or not list((tmp_path / "pooler").iterdir())  # no snapshot
    assert no_advisory_locks(db)  # none left on a pooled server connection either
    assert not list((tmp_path / "locks").glob("*.json"))


def test_a_session_mode_pooler_and_the_direct_url_are_accepted(tmp_path, pgbouncer):
    db = pgbouncer["db"]
    for via in ("session", "direct"):
        out = run_pooler(tmp_path, pgbouncer[via], via)
        assert out[f"lock {via}"].get("failed") is not True, out[f"lock {via}"]["msg"]
        assert out[f"snapshot {via}"].get("failed") is not True, out[f"snapshot {via}"]["msg"]
        assert out[f"release {via}"]["msg"] == "run lock released"
        assert len(list((tmp_path / via).glob("*.dump"))) == 1
    assert no_advisory_locks(db)


# --- two acquisitions at the same moment ------------------------------------------------------------

RUNNER = '''
"""Run a project module as AnsiballZ would (its module_utils under ansible.module_utils), once the
test says go: both acquisitions then start within a millisecond."""
import os, runpy, sys, time
import ansible.module_utils
module, utils, args, go = sys.argv[1:5]
ansible.module_utils.__path__.append(utils)
open(go + ".ready." + str(os.getpid()), "w").close()
while not os.path.exists(go):
    time.sleep(0.0005)
sys.argv = [module, args]
runpy.run_path(module, run_name="__main__")
'''


class DirectModule:
    """prisma_run_lock invoked directly (no ansible-playbook start-up), several at once."""

    def __init__(self, tmp_path: Path, module: Path = MODULE, utils: Path = MODULE_UTILS):
        self.tmp, self.module, self.utils, self.n = tmp_path, module, utils, 0
        self.runner = tmp_path / "run_module.py"
        self.runner.write_text(RUNNER)

    def together(self, *args_list: dict) -> list[dict]:
        """Start one module run per argument dict, release them at the same instant, return their results."""
        self.n += 1
        go = self.tmp / f"go-{self.n}"
        files = []
        for i, args in enumerate(args_list):
            path = self.tmp / f"args-{self.n}-{i}.json"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the URL: private, removed below
            with os.fdopen(fd, "w") as fh:
                json.dump({"ANSIBLE_MODULE_ARGS": args}, fh)
            files.append(path)
        procs = [
            subprocess.Popen(
                [sys.executable, str(self.runner), str(self.module), str(self.utils), str(path), str(go)],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for path in files
        ]
        try:
            assert wait_until(lambda: len(list(self.tmp.glob(f"go-{self.n}.ready.*"))) == len(procs), timeout=60)
            go.touch()
            outs = [proc.communicate(timeout=120) for proc in procs]
        finally:
            for path in files:
                path.unlink()
        results = []
        for out, err in outs:
            assert "Traceback" not in err, err
            results.append(json.loads(out[out.index("{") :]))
        return results


def lock_args(url: str, owner: str, state_dir: Path, **extra) -> dict:
    return {"database_url": url, "owner": owner, "state_dir": str(state_dir), "watch_pid": 0, **extra}


@pytest.mark.parametrize("owners", ["same owner", "two owners"])
def test_two_acquisitions_at_the_same_moment_give_exactly_one_holder_20_times(tmp_path, database, owners):
    """20 pairs of acquisitions released at the same instant. "same owner" is two migrate.yml runs
    started in the same second by one operator (the run id has one-second resolution): before the
    claim, both could read the winner's status and report "held", then the loser's holder wrote
    "refused" over it and both were refused at the deploy (exit 2 and 2, nothing applied)."""
    direct = DirectModule(tmp_path)
    locks = tmp_path / "locks"
    names = ["alice@ops run 20240301T090000Z db1"] * 2 if owners == "same owner" else ["run A", "run B"]
    for attempt in range(20):
        results = direct.together(*(lock_args(database.url(), name, locks) for name in names))
        outcome = sorted("holds" if not r.get("failed") else "refused" for r in results)
        assert outcome == ["holds", "refused"], (attempt, [r["msg"] for r in results])
        [winner] = [r for r in results if not r.get("failed")]
        [loser] = [r for r in results if r.get("failed")]
        assert loser["msg"].startswith(f"another run holds the migration lock on database {database.name}: "), loser
        assert f"prisma-run-lock {names[results.index(winner)]} (pid {winner['backend_pid']}," in loser["msg"]
        assert loser["msg"].endswith("- wait for it to finish; nothing was changed by this run")
        assert [h["pid"] for h in loser["holders"]] == [winner["backend_pid"]]
        assert [pid for pid, _app in run_lock_holders(database)] == [winner["backend_pid"]]
        owner = names[results.index(winner)]
        [renewed, released] = [
            direct.together({"state": state, "owner": owner, "state_dir": str(locks)})[0]
            for state in ("renewed", "released")
        ]
        assert renewed["msg"] == "run lock lease renewed (the holder saw the lock in the database)", renewed
        assert released["msg"] == "run lock released"
        assert run_lock_holders(database) == []  # unlocked before the holder ended
    assert sorted(p.suffix for p in locks.iterdir()) == [".claim"] * len(set(names))


# --- the lease while long stages run ----------------------------------------------------------------


# A lease the gaps between tasks fit in even on a loaded machine (a 3 s lease was once lost between the lock
# task and the snapshot's start, before any dump), and a dump 2.5 times as long.
LEASE_S = 8
SLOW_DUMP_S = 20


@pytest.fixture
def slow_pg_dump(tmp_path):
    """A pg_dump that takes SLOW_DUMP_S longer (its --version answers at once), first on PATH. Each slowed
    call appends a line to ``slow-bin/calls``, so a test can count the dumps it slowed."""
    real = shutil.which("pg_dump")
    folder = tmp_path / "slow-bin"
    folder.mkdir()
    script = folder / "pg_dump"
    calls = folder / "calls"
    script.write_text(
        f'#!/bin/sh\ncase "$1" in --version) ;; *) echo dump >> {calls}; sleep {SLOW_DUMP_S} ;; esac\nexec {real} "$@"\n'
    )
    script.chmod(0o755)
    return folder


def test_a_snapshot_longer_than_the_lease_keeps_the_lock_it_renews(tmp_path, migrated, slow_pg_dump):
    """A lease of LEASE_S and no watched process (as on a target over SSH): the backup_snapshot role with
    backup_snapshot_run_lock renews the lease while its SLOW_DUMP_S dump runs; the same dump without it
    costs the run its lock."""
    database, _app = migrated
    locks = str(tmp_path / "locks")

    def stage(owner, with_lock):
        role_vars = {"backup_snapshot_database_url": URL, "backup_snapshot_dir": str(tmp_path / owner)}
        if with_lock:
            role_vars["backup_snapshot_run_lock"] = {"owner": owner, "state_dir": locks}
        return [
            {"name": f"lock {owner}", "prisma_run_lock": {"database_url": URL, "owner": owner, "state_dir": locks,
                                                          "lease": LEASE_S, "watch_pid": 0}},
            {"name": f"snapshot {owner}", "ansible.builtin.include_role": {"name": "backup_snapshot"},
             "vars": role_vars},
            {"name": f"renew {owner}", "prisma_run_lock": {"state": "renewed", "owner": owner, "state_dir": locks},
             "ignore_errors": True},
            {"name": f"release {owner}", "prisma_run_lock": {"state": "released", "owner": owner,
                                                             "state_dir": locks}},
        ]  # fmt: skip

    out = run_tasks(
        tmp_path,
        stage("renewing", True) + stage("not-renewing", False),
        env={
            "TEST_DATABASE_URL": database.url(),
            "PATH": f"{slow_pg_dump}:{Path(sys.executable).parent}:{os.environ['PATH']}",
        },
    )
    assert out.rc == 0, out.stdout[-3000:]
    # both dumps went through the wrapper: each lasted SLOW_DUMP_S or more, longer than the lease
    calls = slow_pg_dump / "calls"
    assert calls.exists(), out.stdout[-3000:]
    assert calls.read_text().splitlines() == ["dump", "dump"]
    assert out["renew renewing"].get("failed") is not True, out["renew renewing"]["msg"]
    assert out["release renewing"]["msg"] == "run lock released"
    assert out["renew not-renewing"]["failed"] is True
    assert out["renew not-renewing"]["msg"] == (
        f"the run lock of not-renewing was lost at {out['renew not-renewing']['lost_at']} (its lease of {LEASE_S} s ran out"
        " without a renewal): stop here - another run could start; run again from the beginning"
    )
    assert len(list((tmp_path / "renewing").glob("*.dump"))) == 1
    assert no_advisory_locks(database)


def test_a_snapshot_fails_when_the_lock_it_renews_is_lost_during_the_dump(tmp_path, migrated, slow_pg_dump):
    database, _app = migrated
    locks = str(tmp_path / "locks")
    env = {
        "TEST_DATABASE_URL": database.url(),
        "PATH": f"{slow_pg_dump}:{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    tasks = [
        {"name": "lock", "prisma_run_lock": {"database_url": URL, "owner": "run A", "state_dir": locks, "watch_pid": 0}},
        {"name": "snapshot", "prisma_snapshot": {"database_url": URL, "dest_dir": str(tmp_path / "backups"),
                                                 "run_lock": {"owner": "run A", "state_dir": locks}},
         "ignore_errors": True},
        {"name": "release", "prisma_run_lock": {"state": "released", "owner": "run A", "state_dir": locks}},
    ]  # fmt: skip
    done = {}
    thread = threading.Thread(target=lambda: done.update(out=run_tasks(tmp_path, tasks, env=env)))
    thread.start()
    try:
        assert wait_until(
            lambda: (
                database.query(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'prisma-snapshot'"
                    " AND datname = current_database()"  # a pooler's idle server sessions keep their last name
                )
                != [(0,)]
            ),
            timeout=120,
        )
        assert terminate_lock_sessions(database) == 1  # while pg_dump runs
    finally:
        thread.join(timeout=300)
    out = done["out"]
    snapshot = out["snapshot"]
    assert snapshot["failed"] is True
    [dump] = list((tmp_path / "backups").glob("*.dump"))
    assert snapshot["msg"].startswith("the run lock of run A was lost at 20"), snapshot["msg"]
    assert "(its database session ended: FATAL: terminating connection due to administrator command)" in snapshot["msg"]
    assert snapshot["msg"].endswith(
        f"- the snapshot {dump} was taken and no older one was removed, nothing was migrated"
    )
    assert out["release"]["lost_reason"].startswith("its database session ended: FATAL: terminating connection")
    assert no_advisory_locks(database)


def test_a_watched_run_keeps_its_lock_past_the_lease(tmp_path, database):
    """migrate.yml with a lease of 1 s: the generate, snapshot and Prisma start-up before the deploy's
    last check take longer, and the run still holds its lock there (its ansible-playbook lives)."""
    target = make_target(tmp_path, database)
    run = target.run({"confirm": PHRASE, "run_lock_lease": 1})
    assert run.rc == 0, run.report.get("message")
    assert run.report["result"] == "migrated"
    assert target.applied() == MIGRATIONS
    assert no_advisory_locks(database)
    assert_no_secret(run, target)
