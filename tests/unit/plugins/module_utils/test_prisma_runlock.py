"""prisma_runlock: the holder's state files, the claim, lease renewal (confirmed by the holder's
check in the database), the holder's watch loop, its psql session, the pooler probe and the
liveness helpers.

Liveness is tested on real processes: this test's own pid, a child that has exited and been
reaped, and a zombie child. The watch loop runs against a scripted session (the real one, against
a real server, PgBouncer and pg_terminate_backend, is in tests/integration/test_run_lock.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import prisma_runlock
import pytest
from prisma_runlock import (
    ClaimTimeout,
    KeepRenewed,
    LockSession,
    SessionEnded,
    alive,
    check_answer,
    check_sql,
    claim_path,
    claimed,
    hold,
    holder_alive,
    lease_of,
    lost_message,
    not_held,
    pooler_evidence,
    pooler_refusal,
    process_start,
    prune_stale,
    psql_said,
    read_json,
    renew,
    renew_interval,
    same_process,
    started_before,
    state_paths,
    utc,
    write_json,
)

OWNER = "alice run 20240301T090000-4711 db1.prod"
NOT_HELD = (
    f"the run lock of {OWNER} is no longer held (lease expired, or the holder's connection dropped):"
    " stop here - another run could start; run again from the beginning"
)


def exited_child():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def held(tmp_path, pid, since=None, lease=True, checked_at=None):
    status_path, lease_path = state_paths(str(tmp_path), OWNER)
    since = time.time() if since is None else since
    status = {"status": "held", "pid": pid, "since": since, "checked_at": checked_at or since, "lease": 7200}
    write_json(status_path, status)
    if lease:
        with open(lease_path, "w"):
            pass
        os.utime(lease_path, (1_700_000_000, 1_700_000_000))
    return status_path, lease_path


# --- state paths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "tag"),
    [(OWNER, "d94c3fe73245b1aa"), ("ansible run  db1.prod", "b11cec07673ffc90")],
)
def test_state_paths_are_named_after_a_hash_of_the_owner(owner, tag):
    assert state_paths("/var/lib/prisma-ops", owner) == (
        f"/var/lib/prisma-ops/run-lock-{tag}.json",
        f"/var/lib/prisma-ops/run-lock-{tag}.lease",
    )


def test_state_paths_differ_per_owner():
    assert state_paths("/s", "alice run 1 db1")[0] != state_paths("/s", "alice run 1 db2")[0]


# --- write_json / read_json -------------------------------------------------------------------------


def test_write_json_writes_a_private_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "run-lock-x.json"
    write_json(str(path), {"status": "held", "pid": 123, "since": 1709283602.5})
    assert json.loads(path.read_text()) == {"status": "held", "pid": 123, "since": 1709283602.5}
    assert path.stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run-lock-x.json"]


def test_write_json_replaces_the_previous_status(tmp_path):
    path = str(tmp_path / "run-lock-x.json")
    write_json(path, {"status": "held", "pid": 123})
    write_json(path, {"status": "refused", "error": ""})
    assert read_json(path) == {"status": "refused", "error": ""}


@pytest.mark.parametrize(
    ("content", "value"),
    [
        (
            '{"status": "held", "pid": 48213, "since": 1709283602.5}',
            {"status": "held", "pid": 48213, "since": 1709283602.5},
        ),
        ('{"status": "refused", "error": ""}', {"status": "refused", "error": ""}),
        ('{"status": "he', None),  # half-written by someone else
        ("", None),
        ("null", None),
    ],
)
def test_read_json(tmp_path, content, value):
    path = tmp_path / "run-lock-x.json"
    path.write_text(content)
    assert read_json(str(path)) == value


def test_read_json_of_a_missing_file_or_a_directory_is_none(tmp_path):
    assert read_json(str(tmp_path / "missing.json")) is None
    assert read_json(str(tmp_path)) is None


# --- alive / started_before -------------------------------------------------------------------------


def test_alive_for_this_process_and_not_for_no_pid():
    assert alive(os.getpid()) is True
    assert alive(None) is False
    assert alive(0) is False


def test_alive_is_false_for_an_exited_and_reaped_child():
    assert alive(exited_child()) is False


def test_alive_is_false_for_a_zombie():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.time() + 5
        while time.time() < deadline:
            with open(f"/proc/{proc.pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.005)
        else:
            pytest.fail("the child did not exit")
        assert alive(proc.pid) is False
    finally:
        proc.wait()


def test_alive_is_true_for_a_process_of_another_user(monkeypatch):
    def kill(pid, sig):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "kill", kill)
    assert alive(1) is True


def test_started_before():
    now = time.time()
    assert started_before(os.getpid(), now) is True
    assert started_before(os.getpid(), now - 24 * 3600) is False  # a process that took a dead holder's pid


def test_started_before_allows_one_second_of_clock_granularity():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        spawned = time.time()
        assert started_before(proc.pid, spawned) is True
        assert started_before(proc.pid, spawned - 0.5) is True
        assert started_before(proc.pid, spawned - 3) is False
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("pid", [None, "not-a-pid", 0])
def test_started_before_is_false_when_it_cannot_tell(pid):
    assert started_before(pid, time.time()) is False


def test_started_before_is_false_for_an_exited_child():
    assert started_before(exited_child(), time.time()) is False


# --- the holder, emulated: it confirms the lock every poll ------------------------------------------


class Holder:
    """Stands in for the holder process: rewrites ``checked_at`` every 20 ms, as the real one does
    after each check of the lock in the database; ``lose(why)`` records the lock as lost."""

    def __init__(self, tmp_path, pid=None):
        self.status_path, self.lease_path = held(tmp_path, pid or os.getpid())
        self.status = read_json(self.status_path)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(0.02):
            if self.status["status"] == "held":
                self.status["checked_at"] = time.time()
            write_json(self.status_path, self.status)

    def lose(self, why, at=1_709_283_602):
        self.status.update(status="lost", lost_at=at, why=why)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# --- renew ------------------------------------------------------------------------------------------


def test_renew_a_held_lock_touches_the_lease_once_the_holder_saw_it_again(tmp_path):
    with Holder(tmp_path) as holder:
        before = time.time()
        assert renew(str(tmp_path), OWNER) is None
        assert os.stat(holder.lease_path).st_mtime >= before - 1
        assert read_json(holder.status_path)["checked_at"] >= before


def test_renew_waits_for_a_check_after_it_began(tmp_path):
    """A check from before the renewal does not count: the session may have been cut since."""
    _status, lease = held(tmp_path, os.getpid(), checked_at=time.time() - 0.01)
    started = time.monotonic()
    problem = renew(str(tmp_path), OWNER, confirm_within=0.3)
    assert time.monotonic() - started >= 0.3
    assert problem == (
        f"the run lock of {OWNER} was not confirmed in the database within 0.3 s (its holder, pid {os.getpid()},"
        " got no answer from the server): stop here - another run could start; run again from the beginning"
    )


def test_renew_reports_a_lock_lost_while_it_waits(tmp_path):
    status_path, _lease = held(tmp_path, os.getpid(), checked_at=time.time() - 5)

    def lose():
        time.sleep(0.1)
        status = read_json(status_path)
        status.update(status="lost", lost_at=1_709_283_602, why="pg_locks no longer shows it")
        write_json(status_path, status)

    thread = threading.Thread(target=lose)
    thread.start()
    try:
        assert renew(str(tmp_path), OWNER, confirm_within=5) == (
            f"the run lock of {OWNER} was lost at 2024-03-01T09:00:02Z (pg_locks no longer shows it):"
            " stop here - another run could start; run again from the beginning"
        )
    finally:
        thread.join()


@pytest.mark.parametrize(
    ("why", "at"),
    [
        ("its database session ended: FATAL: terminating connection due to administrator command", 1_709_283_602),
        ("its database session ended: FATAL: terminating connection due to idle-session timeout", 1_709_283_602.9),
        ("its lease of 5 s ran out without a renewal", 1_709_283_602),
        ("the database did not answer the lock check within 30 s", 1_709_283_602),
    ],
)
def test_renew_of_a_lost_lock_says_when_and_why_in_one_line(tmp_path, why, at):
    status_path, lease = held(tmp_path, exited_child())
    write_json(status_path, {**read_json(status_path), "status": "lost", "lost_at": at, "why": why})
    problem = renew(str(tmp_path), OWNER)
    assert problem == (
        f"the run lock of {OWNER} was lost at 2024-03-01T09:00:02Z ({why}):"
        " stop here - another run could start; run again from the beginning"
    )
    assert "\n" not in problem
    assert os.stat(lease).st_mtime == 1_700_000_000  # not renewed


def test_renew_without_a_lease_file(tmp_path):
    held(tmp_path, os.getpid(), lease=False)
    assert renew(str(tmp_path), OWNER) == NOT_HELD


def test_renew_without_a_status_file(tmp_path):
    _status, lease = state_paths(str(tmp_path), OWNER)
    open(lease, "w").close()
    assert renew(str(tmp_path), OWNER) == NOT_HELD


@pytest.mark.parametrize(
    "status",
    [
        {"status": "refused"},
        {"status": "error", "error": "FATAL:  too many connections"},
        {"status": "pooler", "error": "two sessions were served by the same server process (pid 4242)"},
        {"status": "held"},
    ],
)
def test_renew_when_the_holder_never_held_it(tmp_path, status):
    status_path, lease = state_paths(str(tmp_path), OWNER)
    write_json(status_path, status)
    open(lease, "w").close()
    assert renew(str(tmp_path), OWNER) == NOT_HELD


def test_renew_when_the_holder_has_died(tmp_path):
    _status, lease = held(tmp_path, exited_child())
    assert renew(str(tmp_path), OWNER) == NOT_HELD
    assert os.stat(lease).st_mtime == 1_700_000_000  # not renewed


def test_renew_of_another_owner_s_lock(tmp_path):
    held(tmp_path, os.getpid())
    assert renew(str(tmp_path), "bob run 20240301T091500-4712 db1.prod") == (
        "the run lock of bob run 20240301T091500-4712 db1.prod is no longer held (lease expired, or the"
        " holder's connection dropped): stop here - another run could start; run again from the beginning"
    )


def test_renew_does_not_trust_a_reused_pid(tmp_path):
    # The holder wrote "since" an hour ago; this pid belongs to a process started after that.
    held(tmp_path, os.getpid(), since=time.time() - 3600)
    assert renew(str(tmp_path), OWNER) == NOT_HELD


def test_a_holder_is_known_by_its_start_not_by_the_wall_clock():
    # The holder records its start in clock ticks since boot. A wall clock corrected after it started
    # (here: its `since` a day off either way) must not make a held lock look lost, and another process
    # given the holder's pid (a different start) must not make a lost one look held.
    start = process_start(os.getpid())
    for since in (time.time() - 24 * 3600, time.time() + 24 * 3600):
        status = {"status": "held", "pid": os.getpid(), "start": start, "since": since}
        assert holder_alive(status) is True
        assert same_process(os.getpid(), status) is True
    assert holder_alive({"status": "held", "pid": os.getpid(), "start": start + 1, "since": time.time()}) is False
    assert holder_alive({"status": "held", "pid": exited_child(), "start": start, "since": time.time()}) is False
    # A status written by an older holder (no start) is still read: compared with since, as before.
    assert holder_alive({"status": "held", "pid": os.getpid(), "since": time.time()}) is True
    assert holder_alive({"status": "held", "pid": os.getpid(), "since": time.time() - 24 * 3600}) is False


def test_not_held_and_holder_alive(tmp_path):
    status_path, lease = held(tmp_path, os.getpid())
    status = read_json(status_path)
    assert holder_alive(status) is True
    assert not_held(OWNER, status, lease) is None
    assert holder_alive(None) is False
    assert holder_alive({**status, "pid": exited_child()}) is False
    assert not_held(OWNER, {**status, "status": "lost", "why": "x", "lost_at": None}, lease) == (
        f"the run lock of {OWNER} was lost at unknown (x): stop here - another run could start;"
        " run again from the beginning"
    )


def test_lost_message_without_a_reason():
    assert lost_message("run A", {"status": "lost", "lost_at": 0}) == (
        "the run lock of run A was lost at 1970-01-01T00:00:00Z (no reason recorded): stop here - another run"
        " could start; run again from the beginning"
    )


@pytest.mark.parametrize(
    ("moment", "text"),
    [(1_709_283_602, "2024-03-01T09:00:02Z"), (1_709_283_602.999, "2024-03-01T09:00:02Z"), (None, "unknown")],
)
def test_utc(moment, text):
    assert utc(moment) == text


# --- long stages keep the lease -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lease", "interval"), [(7200, 60.0), (240, 60.0), (100, 25.0), (5, 1.25), (1, 0.5), (None, 60.0)]
)
def test_renew_interval_is_a_quarter_of_the_lease_between_half_a_second_and_a_minute(lease, interval):
    assert renew_interval(lease) == interval


def test_lease_of(tmp_path):
    assert lease_of(str(tmp_path), OWNER) is None
    held(tmp_path, os.getpid())
    assert lease_of(str(tmp_path), OWNER) == 7200


def test_keep_renewed_touches_the_lease_while_the_stage_runs(tmp_path):
    with Holder(tmp_path) as holder:
        started = time.time()
        with KeepRenewed(str(tmp_path), OWNER, 0.1) as keeper:
            time.sleep(0.5)
        assert keeper.problem is None
        assert os.stat(holder.lease_path).st_mtime >= started + 0.3


def test_keep_renewed_records_a_lock_lost_during_the_stage(tmp_path):
    with Holder(tmp_path) as holder:
        with KeepRenewed(str(tmp_path), OWNER, 0.05) as keeper:
            time.sleep(0.15)
            holder.lose("its database session ended: FATAL: terminating connection due to administrator command")
            time.sleep(0.3)
        assert keeper.problem.startswith(f"the run lock of {OWNER} was lost at 2024-03-01T09:00:02Z (its database")


# --- the claim: one acquisition per owner and host at a time -------------------------------------------


def test_claim_path_shares_the_owner_s_tag(tmp_path):
    status, _lease = state_paths(str(tmp_path), OWNER)
    assert claim_path(str(tmp_path), OWNER) == status[: -len(".json")] + ".claim"


def test_a_second_claim_for_the_same_owner_waits_then_times_out(tmp_path):
    with claimed(str(tmp_path), OWNER, 1):
        started = time.monotonic()
        with pytest.raises(ClaimTimeout), claimed(str(tmp_path), OWNER, 0.2):
            pass
        assert time.monotonic() - started >= 0.2
        with claimed(str(tmp_path), "another owner", 0.2):  # other owners do not wait
            pass
    with claimed(str(tmp_path), OWNER, 0.2):  # free again
        pass
    assert os.stat(claim_path(str(tmp_path), OWNER)).st_mode & 0o777 == 0o600


def test_a_second_claim_gets_it_when_the_first_ends(tmp_path):
    order = []

    def second():
        with claimed(str(tmp_path), OWNER, 5):
            order.append("second")

    with claimed(str(tmp_path), OWNER, 1):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.2)
        order.append("first ends")
    thread.join()
    assert order == ["first ends", "second"]


def test_a_forked_holder_that_closes_the_claim_does_not_release_it(tmp_path):
    with claimed(str(tmp_path), OWNER, 1) as claim:
        child = os.fork()
        if child == 0:  # the holder: closes its copy and lives on
            claim.close()
            time.sleep(0.5)
            os._exit(0)
        try:
            with pytest.raises(ClaimTimeout), claimed(str(tmp_path), OWNER, 0.2):
                pass
        finally:
            os.waitpid(child, 0)


# --- stale state files ------------------------------------------------------------------------------


def test_prune_stale_removes_old_files_of_dead_holders_and_old_lone_claims_only(tmp_path):
    now = time.time()
    dead_old = tmp_path / "run-lock-00000000000000aa.json"
    write_json(str(dead_old), {"status": "lost", "pid": exited_child(), "since": now - 9e5, "lost_at": now - 9e5})
    (tmp_path / "run-lock-00000000000000aa.lease").write_text("")
    dead_new = tmp_path / "run-lock-00000000000000bb.json"
    write_json(str(dead_new), {"status": "lost", "pid": exited_child(), "since": now, "lost_at": now})
    live_old = tmp_path / "run-lock-00000000000000cc.json"
    write_json(str(live_old), {"status": "held", "pid": os.getpid(), "since": now})
    mine = tmp_path / "run-lock-00000000000000dd.json"
    write_json(str(mine), {"status": "lost", "pid": exited_child(), "since": now - 9e5})
    for path in (dead_old, live_old, mine):
        os.utime(path, (now - 8 * 24 * 3600,) * 2)
    other = tmp_path / "snapshot.dump"
    claims = {tag: tmp_path / f"run-lock-00000000000000{tag}.claim" for tag in ("aa", "cc", "dd", "ee", "ff")}
    for path in (other, *claims.values()):
        path.write_text("")
        os.utime(path, (now - 8 * 24 * 3600,) * 2)
    os.utime(claims["ff"])  # a claim of today: an acquisition may be in progress
    assert prune_stale(str(tmp_path), keep=str(mine), now=now) == [
        str(dead_old),
        str(claims["aa"]),  # its status is gone now
        str(claims["ee"]),  # a run released long ago: nothing beside it
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [dead_new.name, live_old.name, mine.name, other.name, claims["cc"].name, claims["dd"].name, claims["ff"].name]
    )


# --- the holder's psql session ----------------------------------------------------------------------

FAKE_PSQL = r"""
import sys, time
for line in sys.stdin:
    sql = line.strip()
    if sql == "hang;":
        time.sleep(30)
    elif sql == "die;":
        sys.stderr.write("FATAL:  terminating connection due to administrator command\nserver closed the connection unexpectedly\n")
        sys.exit(2)
    else:
        print("answer to " + sql, flush=True)
"""


@pytest.fixture
def fake_session():
    proc = subprocess.Popen(
        [sys.executable, "-c", FAKE_PSQL],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    yield LockSession(proc)
    proc.kill()
    proc.wait()


def test_lock_session_answers_one_line_per_statement(fake_session):
    assert fake_session.ask("SELECT 1;", 5) == "answer to SELECT 1;"
    assert fake_session.ask("SELECT 2;", 5) == "answer to SELECT 2;"


def test_lock_session_times_out_on_a_server_that_does_not_answer(fake_session):
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        fake_session.ask("hang;", 0.3)
    assert time.monotonic() - started < 5


def test_lock_session_ended_and_why(fake_session):
    with pytest.raises(SessionEnded):
        fake_session.ask("die;", 5)
    assert psql_said(fake_session.why_ended()) == "FATAL: terminating connection due to administrator command"
    with pytest.raises(SessionEnded):
        fake_session.ask("SELECT 1;", 5)  # stdin closed now


# psql's stderr as captured from PostgreSQL 15 sessions cut by the server (tests/integration sees them live)
CUT = "\nserver closed the connection unexpectedly\n\tThis probably means the server terminated abnormally\n\tbefore or while processing the request.\nconnection to server was lost\n"  # noqa: E501


@pytest.mark.parametrize(
    ("stderr", "said"),
    [
        ("FATAL:  terminating connection due to administrator command" + CUT,
         "FATAL: terminating connection due to administrator command"),
        ("FATAL:  terminating connection due to idle-session timeout" + CUT,
         "FATAL: terminating connection due to idle-session timeout"),
        ("WARNING:  terminating connection due to immediate shutdown command" + CUT,
         "WARNING: terminating connection due to immediate shutdown command"),
        ('psql: error: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
         "\tIs the server running on that host and accepting TCP/IP connections?\n",
         'psql: error: connection to server at "127.0.0.1", port 1 failed: Connection refused'),
        ("psql:<stdin>:3: ERROR:  canceling statement due to statement timeout\n",
         "ERROR: canceling statement due to statement timeout"),
        ("", "psql exited without a message"),
    ],
)  # fmt: skip
def test_psql_said(stderr, said):
    assert psql_said(stderr) == said


# --- the check and the pooler probe -----------------------------------------------------------------


def test_check_sql_asks_the_session_s_own_server_process():
    sql = check_sql("l.locktype = 'advisory'")
    assert sql == (
        "SELECT pg_backend_pid(), count(*) FROM pg_locks l WHERE l.pid = pg_backend_pid() AND l.granted"
        " AND l.locktype = 'advisory';"
    )


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("4242|1", None),
        ("4242|0", "pg_locks no longer shows it held by the holder's session (server pid 4242)"),
        ("4343|1", "the session's server process changed from pid 4242 to pid 4343: a pooler or a reconnect"
                   " - give the direct database URL"),
        ("", "the lock check got an unexpected answer: ''"),
        ("t", "the lock check got an unexpected answer: 't'"),
    ],
)  # fmt: skip
def test_check_answer(answer, why):
    assert check_answer(answer, 4242) == why


@pytest.mark.parametrize(
    ("pids", "why"),
    [
        ((100, 200, 100), None),  # a direct connection, or a session-mode pooler
        ((100, 100, 100), "two sessions were served by the same server process (pid 100)"),  # transaction mode, LIFO
        ((100, 200, 300), "one session's server process changed between two statements (pid 100, then 300)"),
        ((100, 200, 200), "one session's server process changed between two statements (pid 100, then 200)"),
        ((None, 200, None), None),
    ],
    ids=["direct", "shared", "changed", "took-the-other", "unknown"],
)
def test_pooler_evidence(pids, why):
    assert pooler_evidence(*pids) == why


def test_pooler_refusal_is_one_line_saying_to_give_the_direct_url():
    msg = pooler_refusal("the URL says pgbouncer=true", "a session advisory lock held through it protects nothing")
    assert msg == (
        "database_url goes through a transaction-mode connection pooler such as PgBouncer (the URL says"
        " pgbouncer=true): a session advisory lock held through it protects nothing - give the direct database URL"
        " (the PostgreSQL server's host and port, without pgbouncer=true); nothing was changed"
    )


# --- the holder's watch loop ------------------------------------------------------------------------


class ScriptedSession:
    """Answers the holder's checks from a list: a string, or an exception to raise."""

    def __init__(self, answers, stderr="", on_ask=None):
        self.answers, self.stderr, self.on_ask, self.asked = list(answers), stderr, on_ask, 0

    def ask(self, sql, timeout):
        assert sql.startswith("SELECT pg_backend_pid(), count(*) FROM pg_locks")
        self.asked += 1
        if self.on_ask:
            self.on_ask(self.asked)
        answer = self.answers.pop(0) if self.answers else "4242|1"
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def why_ended(self):
        return self.stderr


@pytest.fixture
def fast(monkeypatch):
    monkeypatch.setattr(prisma_runlock, "POLL_S", 0.01)


def run_hold(tmp_path, session, *, lease=7200, watch=None, stop=lambda: False, clean=str, old_lease=False):
    status_path, lease_path = held(tmp_path, os.getpid())
    if not old_lease:
        os.utime(lease_path)  # renewed just now (held() dates it to 2023)
    status = read_json(status_path) | {"backend_pid": 4242}
    how = hold(
        session,
        backend_pid=4242,
        where="true",
        status=status,
        status_path=status_path,
        lease_path=lease_path,
        lease=lease,
        watch=watch,
        stop=stop,
        clean=clean,
    )
    return how, read_json(status_path), lease_path


def remove_lease_after(n, tmp_path):
    lease = state_paths(str(tmp_path), OWNER)[1]

    def on_ask(asked):
        if asked == n:
            os.unlink(lease)

    return on_ask


def test_hold_checks_every_poll_until_the_lease_is_removed(tmp_path, fast):
    session = ScriptedSession([], on_ask=remove_lease_after(5, tmp_path))
    before = time.time()
    how, status, _lease = run_hold(tmp_path, session, lease=7200)
    assert how == "released"
    assert session.asked == 5
    assert status["status"] == "held"
    assert status["checked_at"] >= before


def test_hold_stops_when_a_release_is_asked(tmp_path, fast):
    asked = []
    how, _status, _lease = run_hold(tmp_path, ScriptedSession([], on_ask=asked.append), stop=lambda: len(asked) >= 3)
    assert how == "released"
    assert asked == [1, 2, 3]


@pytest.mark.parametrize(
    ("answer", "stderr", "why"),
    [
        (SessionEnded(), "FATAL:  terminating connection due to administrator command" + CUT,
         "its database session ended: FATAL: terminating connection due to administrator command"),
        (SessionEnded(), "FATAL:  terminating connection due to idle-session timeout" + CUT,
         "its database session ended: FATAL: terminating connection due to idle-session timeout"),
        (SessionEnded(), "WARNING:  terminating connection due to immediate shutdown command" + CUT,
         "its database session ended: WARNING: terminating connection due to immediate shutdown command"),
        (TimeoutError(), "", "the database did not answer the lock check within 30 s"),
        ("4242|0", "", "pg_locks no longer shows it held by the holder's session (server pid 4242)"),
        ("5151|1", "", "the session's server process changed from pid 4242 to pid 5151: a pooler or a reconnect"
                       " - give the direct database URL"),
    ],
    ids=["terminated", "idle-session-timeout", "restart", "no-answer", "not-in-pg-locks", "other-backend"],
)  # fmt: skip
def test_hold_records_a_lost_lock_with_when_and_why(tmp_path, fast, answer, stderr, why):
    before = time.time()
    how, status, lease = run_hold(tmp_path, ScriptedSession(["4242|1", "4242|1", answer], stderr=stderr))
    assert how == "lost"
    assert status["status"] == "lost"
    assert status["why"] == why
    assert before <= status["lost_at"] <= time.time()
    assert os.path.exists(lease)  # the run's next renew or release reads the reason
    assert renew(str(tmp_path), OWNER).startswith(
        f"the run lock of {OWNER} was lost at {utc(status['lost_at'])} ({why})"
    )


def test_hold_passes_psql_s_words_through_clean(tmp_path, fast):
    session = ScriptedSession([SessionEnded()], stderr='FATAL:  password authentication failed for user "s3cret"\n')
    _how, status, _lease = run_hold(tmp_path, session, clean=lambda text: text.replace("s3cret", "********"))
    assert status["why"] == 'its database session ended: FATAL: password authentication failed for user "********"'


def test_hold_a_failed_check_after_a_release_is_a_release(tmp_path, fast):
    lease = state_paths(str(tmp_path), OWNER)[1]

    def on_ask(asked):
        if asked == 2:
            os.unlink(lease)  # released while the check ran; the holder then ends the session itself

    how, status, _lease = run_hold(tmp_path, ScriptedSession(["4242|1", SessionEnded()], on_ask=on_ask))
    assert how == "released"
    assert status["status"] == "held"


def test_hold_without_a_watched_process_gives_up_when_the_lease_runs_out(tmp_path, fast):
    # a lease from 2023: far older than 5 s
    how, status, _lease = run_hold(tmp_path, ScriptedSession([]), lease=5, old_lease=True)
    assert how == "lost"
    assert status["why"] == "its lease of 5 s ran out without a renewal"


def test_hold_with_a_live_watched_process_keeps_an_old_lease(tmp_path, fast):
    watch = (os.getpid(), process_start(os.getpid()))
    how, status, _lease = run_hold(
        tmp_path, ScriptedSession([], on_ask=remove_lease_after(20, tmp_path)), lease=5, watch=watch, old_lease=True
    )
    assert how == "released"  # 20 checks with a lease from 2023: the watched run lives, so the lock stays
    assert status["status"] == "held"


def test_hold_ends_when_the_watched_run_ends(tmp_path, fast):
    child = exited_child()
    how, _status, _lease = run_hold(tmp_path, ScriptedSession([]), watch=(child, 12345))
    assert how == "run ended"


def test_hold_ends_when_the_watched_pid_is_another_process_now(tmp_path, fast):
    how, _status, _lease = run_hold(tmp_path, ScriptedSession([]), watch=(os.getpid(), process_start(os.getpid()) - 1))
    assert how == "run ended"


def test_process_start():
    assert process_start(os.getpid()) == process_start(os.getpid()) > 0
    assert process_start(exited_child()) is None
    assert process_start(None) is None
