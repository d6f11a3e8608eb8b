"""The run lock on the host that holds it: the holder's state files, its watch over the lock in
the database, lease renewal, and the pooler probe (shared by prisma_run_lock, prisma_snapshot and
the deploy's last check in prisma_command).

The holder process keeps the psql session that holds the advisory lock and writes
``run-lock-<tag>.json``: its pid and status - ``held`` (with ``checked_at``, the last moment it saw
the lock in ``pg_locks`` through its own session), ``lost`` (with ``lost_at`` and ``why``),
``refused``, ``pooler`` or ``error``. It checks the lock in the database on every poll, and ends
the session when the ``.lease`` file is removed (the run releases it), when the watched run
process exits, or - when no process is watched - when the lease is older than ``lease`` seconds.
Acquisitions for one owner on one host are serialised by ``run-lock-<tag>.claim`` (``flock``), so
two runs with the same owner (two runs started in the same second) never share the holder's files.
Pure standard library.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import glob
import hashlib
import json
import os
import select
import threading
import time

POLL_S = 0.5  # the holder checks the lock in the database this often
CHECK_TIMEOUT_S = 30.0  # a lock check the server has not answered by then counts as a lost lock
CONFIRM_S = 10.0  # renew() waits this long for the holder to see the lock in the database again
STALE_S = 7 * 24 * 3600  # state files of dead holders older than this are removed at the next acquisition

AGAIN = "stop here - another run could start; run again from the beginning"


def state_paths(state_dir: str, owner: str) -> tuple[str, str]:
    """The holder's status file and lease file for this owner."""
    tag = _tag(owner)
    return os.path.join(state_dir, f"run-lock-{tag}.json"), os.path.join(state_dir, f"run-lock-{tag}.lease")


def claim_path(state_dir: str, owner: str) -> str:
    """The file whose ``flock`` serialises acquisitions for this owner on this host."""
    return os.path.join(state_dir, f"run-lock-{_tag(owner)}.claim")


def _tag(owner: str) -> str:
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


def utc(moment) -> str:
    """An epoch time as ISO 8601 UTC to the second (``2024-03-01T09:00:02Z``); ``unknown`` if none."""
    if not isinstance(moment, (int, float)):
        return "unknown"
    return datetime.datetime.fromtimestamp(moment, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")  # noqa: UP017


# --- who holds it -----------------------------------------------------------------------------------


def holder_alive(status: dict | None) -> bool:
    """Whether the status names a holder that holds the lock and is still running (not a later
    process that was given a dead holder's pid)."""
    status = status or {}
    pid = status.get("pid")
    return status.get("status") == "held" and alive(pid) and same_process(pid, status)


def same_process(pid, status: dict) -> bool:
    """Whether ``pid`` is still the process that wrote ``status``: its start (clock ticks since boot,
    ``start``) is the one recorded. No wall-clock change moves that; comparing the wall-clock ``since``
    with the boot time does (a VM clock corrected by a second or more after the holder started made a
    held lock look lost). A status without ``start`` (written by an older holder) is compared the old way."""
    start = status.get("start")
    if start is not None:
        return process_start(pid) == start
    return started_before(pid, status.get("since", 0))


def not_held(owner: str, status: dict | None, lease_path: str) -> str | None:
    """Why this owner's lock is not held now (one line, without a final full stop), or None."""
    status = status or {}
    if status.get("status") == "lost":
        return lost_message(owner, status)
    if not holder_alive(status) or not os.path.exists(lease_path):
        return f"the run lock of {owner} is no longer held (lease expired, or the holder's connection dropped): {AGAIN}"
    return None


def lost_message(owner: str, status: dict) -> str:
    return f"the run lock of {owner} was lost at {utc(status.get('lost_at'))} ({status.get('why') or 'no reason recorded'}): {AGAIN}"


def renew(state_dir: str, owner: str, confirm_within: float = CONFIRM_S) -> str | None:
    """Renew the lease of a lock this owner holds; return why not (one line), or None.

    The lease is touched, then the holder must see the lock in ``pg_locks`` again after that
    moment (``checked_at``; it checks every poll): a session the server cut since its last check
    is never reported as held."""
    status_path, lease_path = state_paths(state_dir, owner)
    problem = not_held(owner, read_json(status_path), lease_path)
    if problem:
        return problem
    asked = time.time()
    try:
        os.utime(lease_path)
    except OSError:
        return not_held(owner, None, lease_path)
    deadline = time.monotonic() + confirm_within
    while True:
        status = read_json(status_path)
        problem = not_held(owner, status, lease_path)
        if problem:
            return problem
        if (status.get("checked_at") or 0) >= asked:
            return None
        if time.monotonic() > deadline:
            return (
                f"the run lock of {owner} was not confirmed in the database within {confirm_within:g} s"
                f" (its holder, pid {status.get('pid')}, got no answer from the server): {AGAIN}"
            )
        time.sleep(0.05)


def lease_of(state_dir: str, owner: str) -> float | None:
    """The lease the holder was started with, in seconds, or None."""
    status = read_json(state_paths(state_dir, owner)[0]) or {}
    return status.get("lease")


class KeepRenewed:
    """Renew a run lock's lease every ``interval`` seconds from a thread while a long stage runs
    (a snapshot that outlasts the lease must not lose the lock); ``problem`` is the first reason
    it could not, or None. Use as a context manager."""

    def __init__(self, state_dir: str, owner: str, interval: float):
        self.state_dir, self.owner, self.interval = state_dir, owner, interval
        self.problem: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.wait(self.interval):
            self.problem = renew(self.state_dir, self.owner)
            if self.problem:
                return

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        return False


def renew_interval(lease: float | None) -> float:
    """How often a long stage renews a lease: four times per lease, between 0.5 s and 60 s."""
    return min(60.0, max(0.5, (lease or 7200) / 4))


# --- acquisition ------------------------------------------------------------------------------------


class ClaimTimeout(Exception):
    pass


@contextlib.contextmanager
def claimed(state_dir: str, owner: str, timeout: float):
    """Hold this owner's claim (an exclusive ``flock``) for one acquisition: read the old status,
    start the holder, wait for its answer. Yields the open claim file: a forked holder must close
    it (closing drops the child's reference only; the parent keeps the lock until it leaves)."""
    path = claim_path(state_dir, owner)
    deadline = time.monotonic() + timeout
    while True:
        handle = os.fdopen(os.open(path, os.O_RDWR | os.O_CREAT, 0o600), "r+")
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    handle.close()
                    raise ClaimTimeout(path) from None
                time.sleep(0.02)
        try:
            same = os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if same:  # not a claim file another run's pruning unlinked while this one waited for it
            break
        handle.close()
    with handle:
        os.utime(path)  # a claim in use is never week-old
        try:
            yield handle
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def prune_stale(state_dir: str, keep: str, now: float | None = None, age: float = STALE_S) -> list[str]:
    """Remove the state files of dead holders older than ``age`` seconds (a lost or expired lock of
    a run nobody released), and claim files that old with no status beside them (every run has its
    own owner, so one is left per run), except ``keep``'s. Returns the files removed."""
    now = time.time() if now is None else now

    def old(path):
        try:
            return now - os.stat(path).st_mtime > age
        except OSError:
            return False

    removed = []
    for path in sorted(glob.glob(os.path.join(state_dir, "run-lock-*.json"))):
        if path != keep and old(path) and not holder_alive(read_json(path)):
            for stale in (path, path[: -len(".json")] + ".lease"):
                with contextlib.suppress(OSError):
                    os.unlink(stale)
            removed.append(path)
    keep_claim = keep[: -len(".json")] + ".claim"
    for path in sorted(glob.glob(os.path.join(state_dir, "run-lock-*.claim"))):
        if path != keep_claim and old(path) and not os.path.exists(path[: -len(".claim")] + ".json"):
            with contextlib.suppress(OSError):
                os.unlink(path)
            removed.append(path)
    return removed


# --- the holder's session ---------------------------------------------------------------------------


class SessionEnded(Exception):
    """The session's psql exited (the server cut the connection, or a statement failed)."""


class LockSession:
    """A psql session (``prisma_pg.open_session``) asked one statement at a time and read with a
    deadline, so that a server that was cut off or stopped answering never hangs the holder.
    stdout is read from its file descriptor (never through the text wrapper)."""

    def __init__(self, proc):
        self.proc = proc
        self._buf = b""

    def ask(self, sql: str, timeout: float) -> str:
        """The one line the statement prints. SessionEnded when psql has exited, TimeoutError when
        nothing came within ``timeout`` seconds."""
        try:
            self.proc.stdin.write(sql + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            raise SessionEnded() from None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            ready, _w, _x = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 4096)
                if not chunk:
                    raise SessionEnded()
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode("utf-8", "replace").strip()

    def why_ended(self, wait: float = 5.0) -> str:
        """psql's stderr once it has exited (it is stopped if it has not); see ``psql_said``."""
        self.close(wait)
        try:
            return self.proc.stderr.read() or ""
        except (OSError, ValueError):
            return ""

    def close(self, wait: float = 5.0) -> None:
        """End the session: psql exits at the end of its input; one that does not is killed."""
        with contextlib.suppress(BrokenPipeError, OSError, ValueError):
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=wait)
        except Exception:  # noqa: BLE001 (subprocess.TimeoutExpired: a psql that does not exit is killed)
            self.proc.kill()
            self.proc.wait()


def psql_said(stderr: str) -> str:
    """The most telling line of psql's stderr: the server's FATAL/ERROR line when there is one."""
    lines = [ln.strip() for ln in (stderr or "").splitlines() if ln.strip()]
    for marker in ("FATAL:", "ERROR:"):
        for ln in lines:
            if marker in ln:
                return " ".join(ln[ln.index(marker) :].split())[:300]
    return " ".join(lines[0].split())[:300] if lines else "psql exited without a message"


def check_sql(where: str) -> str:
    """The holder's check, sent through its own session: its server process, and whether that
    process holds the lock (``where`` is ``prisma_pg.advisory_lock_where(key)``)."""
    return (
        f"SELECT pg_backend_pid(), count(*) FROM pg_locks l WHERE l.pid = pg_backend_pid() AND l.granted AND {where};"
    )


def check_answer(answer: str, backend_pid: int) -> str | None:
    """Why the check's answer (``pid|count``) shows the lock is not held by the holder's server
    process, or None when it is."""
    pid, _sep, count = answer.partition("|")
    if not pid.strip().isdigit() or not count.strip().isdigit():
        return f"the lock check got an unexpected answer: {answer[:80]!r}"
    if int(pid) != backend_pid:
        return (
            f"the session's server process changed from pid {backend_pid} to pid {int(pid)}: a pooler or a"
            " reconnect - give the direct database URL"
        )
    if int(count) == 0:
        return f"pg_locks no longer shows it held by the holder's session (server pid {backend_pid})"
    return None


def pooler_evidence(first: int, other: int, again: int) -> str | None:
    """Why three backend pids show a transaction-mode pooler between this host and the server, or
    None. ``first`` and ``again`` come from two statements of one session, ``other`` from another
    session opened in between. On a direct connection (and through a session-mode pooler) a session
    keeps one server process and two live sessions never share one."""
    if first != again:
        return f"one session's server process changed between two statements (pid {first}, then {again})"
    if other == first:
        return f"two sessions were served by the same server process (pid {first})"
    return None


def pooler_refusal(why: str, what: str) -> str:
    """The one-line refusal of a URL that goes through a transaction-mode pooler."""
    return (
        f"database_url goes through a transaction-mode connection pooler such as PgBouncer ({why}): {what}"
        " - give the direct database URL (the PostgreSQL server's host and port, without pgbouncer=true);"
        " nothing was changed"
    )


# --- the holder's watch -----------------------------------------------------------------------------


def hold(session, *, backend_pid, where, status, status_path, lease_path, lease, watch, stop, clean=str):
    """Keep the lock: on every poll, check it in the database through the holder's own session, and
    watch the run (the process ``watch``, a ``(pid, start)`` pair, or else the lease). Returns
    ``released`` or ``run ended`` (the caller unlocks and removes the status), or ``lost`` after
    recording it in the status file (the caller ends the session and keeps the status, so that the
    run's next renew or release says what happened). ``stop()`` says a release was asked
    (SIGTERM); ``clean`` removes secrets from psql's messages."""
    sql = check_sql(where)
    while True:
        if stop() or not os.path.exists(lease_path):
            return "released"
        if watch:
            if process_start(watch[0]) != watch[1]:
                return "run ended"
        else:
            try:
                age = time.time() - os.stat(lease_path).st_mtime
            except OSError:
                return "released"
            if age > lease:
                return _lose(status, status_path, f"its lease of {lease} s ran out without a renewal")
        sent = time.time()  # a check confirms a renewal only if it was sent after the renewal began
        try:
            why = check_answer(session.ask(sql, CHECK_TIMEOUT_S), backend_pid)
        except SessionEnded:
            why = f"its database session ended: {clean(psql_said(session.why_ended()))}"
        except TimeoutError:
            why = f"the database did not answer the lock check within {CHECK_TIMEOUT_S:g} s"
        if why:
            if stop() or not os.path.exists(lease_path):
                return "released"  # the run let it go meanwhile
            return _lose(status, status_path, why)
        status["checked_at"] = sent
        write_json(status_path, status)
        time.sleep(POLL_S)


def _lose(status, status_path, why):
    status.update(status="lost", lost_at=time.time(), why=why)
    write_json(status_path, status)
    return "lost"


# --- processes and files ----------------------------------------------------------------------------


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (TypeError, ValueError, OverflowError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def process_start(pid) -> int | None:
    """When process ``pid`` started (clock ticks since boot), or None when it is gone or a zombie:
    a pid and its start identify one process, even after the pid is reused."""
    if not alive(pid):
        return None
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return int(fh.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def started_before(pid, moment):
    """Whether process pid started before the epoch time moment (so it is not a later
    process that was given a dead holder's pid)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration, TypeError):
        return False
    return boot + ticks / os.sysconf("SC_CLK_TCK") <= moment + 1


def write_json(path, data):
    tmp = f"{path}.tmp{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)
    os.replace(tmp, path)


def read_json(path):
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
