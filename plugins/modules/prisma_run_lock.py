#!/usr/bin/python
"""Ansible module: prisma_run_lock."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_run_lock
short_description: Hold a per-database lock for the length of a migration or rollback run
description:
  - With I(state=acquired), starts a small holder process on this host that opens one PostgreSQL
    session, takes the advisory lock C(7270736900001) with C(pg_try_advisory_lock) and keeps the
    session open. The lock lives in the target database, so runs from any control machine see it.
    Prisma's own lock (72707369, taken by C(migrate deploy)) is a different key.
  - When another session holds the lock, fails saying who (application name, user, address) and
    since when. Two acquisitions started at the same moment get exactly one holder - the database
    decides between owners, and acquisitions for one owner on one host (two runs started in the same
    second have the same owner) take turns on a claim file, so they never share the holder's files.
  - The holder names its session C(prisma-run-lock <owner>) so that other runs can tell who holds it.
  - The holder checks the lock in the database on every poll (every 0.5 s), through its own session
    (C(pg_locks) for its server process). When the session is gone (C(pg_terminate_backend),
    C(idle_session_timeout), a server restart or failover), the server does not answer within 30 s,
    or the lock is no longer there, it records the lock as C(lost) with the moment and the reason and
    ends. I(state=renewed) - and the deploy's last check in M(prisma_command) - then refuse with that
    reason, and I(state=released) reports it (I(lost_at), I(lost_reason)).
  - Refused through a transaction-mode pooler, where a session advisory lock means nothing - a URL
    with C(pgbouncer=true), or a server that answers like one (one session's server process changes
    between two statements, or two live sessions are served by the same server process). The message
    says to give the direct database URL. A session-mode pooler keeps one server process per session
    and is accepted.
  - No stale lock - the lock is a session lock, so it disappears with the session. The holder unlocks
    and ends the session when the run releases it (I(state=released)), when the process it watches
    exits (the local C(ansible-playbook) found by walking up the process tree, or I(watch_pid)), and -
    when no process is watched (a target over SSH) - when its lease file has not been renewed for
    I(lease) seconds (I(state=renewed), or M(prisma_snapshot) with I(run_lock) while it dumps). While
    the watched process lives the lease does not run out - a long stage never loses the lock of a run
    that is still running.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  state:
    description: C(acquired) takes the lock, C(renewed) extends its lease, C(released) lets it go.
    type: str
    choices: [acquired, renewed, released]
    default: acquired
  owner:
    description: Who runs, shown to anyone refused (for example C(alice@laptop run 20240101T000000Z)).
    type: str
    required: true
  state_dir:
    description: Folder for the holder's state, lease and claim files (created 0700).
    type: path
    required: true
  lease:
    description:
      - Seconds without a renewal after which the holder gives the lock up by itself, when it watches
        no process (I(watch_pid) C(0), or no C(ansible-playbook) ancestor - a target over SSH).
    type: int
    default: 7200
  watch_pid:
    description:
      - PID whose exit releases the lock. Default - the nearest C(ansible-playbook) or C(ansible-runner)
        ancestor of this module on this host (local connection); none over SSH. C(0) watches no process
        (the lease alone decides, as over SSH).
    type: int
  psql:
    description: The C(psql) client.
    type: str
    default: psql
  timeout:
    description: Seconds to wait for the holder to report (and for another acquisition with the same owner).
    type: int
    default: 30
notes:
  - I(database_url) is needed to take the lock (I(state=acquired)); renewing and releasing work on the
    holder's files in I(state_dir) and do not connect.
  - Renewing waits (up to 10 s) until the holder has seen the lock in the database after the renewal
    began, so a lock lost a moment ago is never renewed.
attributes:
  check_mode:
    support: none
    description: Never runs in check mode (it would take the lock).
  diff_mode:
    support: none
seealso:
  - module: prisma_database_info
  - module: prisma_snapshot
"""

EXAMPLES = r"""
- name: Take the run lock
  prisma_run_lock:
    database_url: "{{ database_url }}"
    owner: "ops@laptop run {{ run_id }}"
    state_dir: /var/backups/prisma/.locks

- name: Renew the run lock's lease
  prisma_run_lock:
    state: renewed
    owner: "ops@laptop run {{ run_id }}"
    state_dir: /var/backups/prisma/.locks

- name: Release the run lock
  prisma_run_lock:
    state: released
    owner: "ops@laptop run {{ run_id }}"
    state_dir: /var/backups/prisma/.locks
"""

RETURN = r"""
holder_pid:
  description: PID of the holder process on this host, when it was acquired; else null.
  returned: always
  type: int
watched_pid:
  description: The PID whose exit releases the lock, when it was acquired and a process is watched; else null.
  returned: always
  type: int
backend_pid:
  description: The server process of the holder's session (for C(pg_stat_activity)), when it was acquired; else null.
  returned: always
  type: int
lock_key:
  description: The advisory lock key.
  returned: always
  type: int
  sample: 7270736900001
holders:
  description: The sessions holding the lock when it was refused; else empty.
  returned: always
  type: list
  elements: dict
lost_at:
  description:
    - When the holder found the lock lost (ISO 8601 UTC), for I(state=renewed) and I(state=released) of a lock
      that was lost; else null.
  returned: always
  type: str
  sample: "2024-03-01T09:00:02Z"
lost_reason:
  description: Why the holder found the lock lost, when it was; else null.
  returned: always
  type: str
  sample: "its database session ended: FATAL: terminating connection due to administrator command"
"""

import contextlib
import json
import os
import signal
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_pg import (
    PSQL_ARGS,
    RUN_LOCK_KEY,
    advisory_lock_where,
    client_tools,
    describe_holders,
    explain_psql_error,
    first_line,
    lock_holders_sql,
    open_session,
    psql_env,
)
from ansible.module_utils.prisma_runlock import (
    ClaimTimeout,
    LockSession,
    SessionEnded,
    alive,
    claimed,
    hold,
    holder_alive,
    pooler_evidence,
    pooler_refusal,
    process_start,
    prune_stale,
    read_json,
    renew,
    same_process,
    state_paths,
    utc,
    write_json,
)
from ansible.module_utils.prisma_url import redact

POOLER_WHAT = "a session advisory lock held through it protects nothing"


def _ancestor_playbook_pid():
    """The topmost ansible-playbook/ansible-runner ancestor (task workers are
    short-lived forks of it with the same command line)."""
    pid, found = os.getppid(), None
    for _ in range(40):
        if pid <= 1:
            break
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read().replace(b"\0", b" ").decode("utf-8", "replace")
            with open(f"/proc/{pid}/stat") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
        if "ansible-playbook" in cmd or "ansible-runner" in cmd:
            found = pid
        elif found:
            break
        pid = ppid
    return found


def _pid(answer):
    return int(answer) if answer.isdigit() else None


def _other_session_pid(psql, env):
    """The server process of a second, short session (the pooler probe)."""
    try:
        proc = subprocess.run(
            [psql, *PSQL_ARGS, "-c", "SELECT pg_backend_pid();"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            env={**os.environ, **env, "PGAPPNAME": "prisma-pooler-probe"},  # not mistaken for the holder
            text=True,
            timeout=30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None, "a second session to the server did not answer within 30 s"
    if proc.returncode != 0 or not _pid(proc.stdout.strip()):
        return None, proc.stderr or "psql exited without a message"
    return int(proc.stdout.strip()), None


def _start(session, psql, env, conn, key):
    """Probe for a pooler, then take the lock. Returns the status to write (held or why not)."""
    try:
        first = _pid(session.ask("SELECT pg_backend_pid();", 30))
        other, err = _other_session_pid(psql, env)
        if err:
            return {"status": "error", "error": explain_psql_error(err, conn)}
        again = _pid(session.ask("SELECT pg_backend_pid();", 30))
        why = pooler_evidence(first, other, again)
        if why:
            return {"status": "pooler", "error": why}
        taken, _sep, pid = session.ask(f"SELECT pg_try_advisory_lock({key}), pg_backend_pid();", 30).partition("|")
    except SessionEnded:
        return {"status": "error", "error": explain_psql_error(session.why_ended(), conn)}
    except TimeoutError:
        return {"status": "error", "error": f"{conn['host']}:{conn['port']} did not answer within 30 s"}
    if taken == "f":
        return {"status": "refused"}
    if taken != "t":
        return {"status": "error", "error": f"unexpected answer to pg_try_advisory_lock: {taken[:80]!r}"}
    if _pid(pid) != first:
        return {"status": "pooler", "error": f"the lock was taken by server process {pid}, not the session's {first}"}
    return {"status": "held", "backend_pid": first}


def _holder(psql, env, conn, key, status_path, lease_path, lease, watch):
    """Runs in the detached grandchild: take the lock, hold the session and check the lock in the
    database until the run lets it go or it is lost."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))  # a release: finish the poll, unlock, end
    session = LockSession(open_session(psql, env))
    status = _start(session, psql, env, conn, key)
    if status["status"] != "held":
        write_json(status_path, status)
        session.close()
        return
    status.update(
        pid=os.getpid(), start=process_start(os.getpid()), since=time.time(), checked_at=time.time(), lease=lease
    )
    status["watch_pid"] = watch[0] if watch else None
    status["watch_start"] = watch[1] if watch else None
    write_json(status_path, status)
    how = "lost"
    try:
        how = hold(
            session,
            backend_pid=status["backend_pid"],
            where=advisory_lock_where(key),
            status=status,
            status_path=status_path,
            lease_path=lease_path,
            lease=lease,
            watch=watch,
            stop=lambda: bool(stopping),
            clean=lambda text: redact(text, conn.get("password"), *conn.get("secrets", [])),
        )
        if how != "lost":
            try:
                session.ask(f"SELECT pg_advisory_unlock({key});", 10)  # gone from pg_locks before the holder ends
            except (SessionEnded, TimeoutError):
                pass
    finally:
        session.close()
        if how != "lost":
            current = read_json(status_path) or {}
            if current.get("pid") == os.getpid():
                os.unlink(status_path)


def _daemonize_and_hold(claim, *args):
    child = os.fork()
    if child > 0:
        os.waitpid(child, 0)  # the first child exits at once, its own child lives on
        return
    claim.close()  # the parent keeps the claim until the holder has reported
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        _holder(*args)
    finally:
        os._exit(0)


def _lost_fields(status):
    if (status or {}).get("status") != "lost":
        return {}
    return {"lost_at": utc(status.get("lost_at")), "lost_reason": status.get("why")}


def _release(module, p, result, status_path, lease_path):
    status = read_json(status_path)
    result.update(_lost_fields(status))
    if os.path.exists(lease_path):
        os.unlink(lease_path)  # the holder sees it and ends its session
        result["changed"] = True
    pid = (status or {}).get("pid")
    if not (pid and alive(pid) and same_process(pid, status or {})):
        pid = None  # gone already (a later process may have its pid)
    else:
        os.kill(pid, signal.SIGTERM)  # the holder unlocks and ends its session at its next poll
    deadline = time.time() + p["timeout"]
    while pid and alive(pid) and time.time() < deadline:
        time.sleep(0.05)
    if result["lost_at"]:
        if os.path.exists(status_path):
            os.unlink(status_path)
        result["changed"] = True
        msg = (
            f"run lock released; it had been lost at {result['lost_at']} ({result['lost_reason']}):"
            " from then on another run could have started - check the report and the database"
        )
        module.warn(msg)
        module.exit_json(msg=msg, **result)
    module.exit_json(msg="run lock released" if result["changed"] else "run lock was not held", **result)


def _refuse_taken(module, p, result, psql, conn, fail):
    rc, out, _err = module.run_command(
        [psql, "--no-psqlrc", "--quiet", "--tuples-only", "--no-align", "-c", lock_holders_sql(RUN_LOCK_KEY)],
        environ_update=psql_env(conn),
        check_rc=False,
    )
    result["holders"] = json.loads(out) if rc == 0 and out.strip() else []
    fail(
        f"another run holds the migration lock on database {conn['database']}: {describe_holders(result['holders'])}"
        " - wait for it to finish; nothing was changed by this run"
    )


def _acquire(module, p, result, fail, status_path, lease_path, claim):
    conn = connect(p, fail)
    if conn.get("pgbouncer"):
        fail(pooler_refusal("the URL says pgbouncer=true", POOLER_WHAT))
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    watch_pid = _ancestor_playbook_pid() if p["watch_pid"] is None else (p["watch_pid"] or None)
    watch = (watch_pid, process_start(watch_pid)) if watch_pid and process_start(watch_pid) else None

    old = read_json(status_path)
    if holder_alive(old):
        if watch and old.get("watch_pid") == watch[0]:
            fail(
                f"this run ({p['owner']}) already holds the lock (holder pid {old.get('pid')}): take it once per run"
                " and release it with state=released before taking it again"
            )
        _refuse_taken(module, p, result, psql, conn, fail)  # another run with the same owner (same second)
    if (old or {}).get("status") == "lost" and old.get("watch_pid") and old.get("watch_start"):
        if process_start(old["watch_pid"]) == old["watch_start"] and (not watch or watch[0] != old["watch_pid"]):
            # the run that lost it still runs and must see 'lost', never this run's 'held', in these files
            fail(
                f"the run lock of {p['owner']} was lost while another run of that name (ansible-playbook pid"
                f" {old['watch_pid']}) still runs: wait for it to end, then run again - nothing was changed by this run"
            )
    with contextlib.suppress(FileNotFoundError):
        os.unlink(status_path)  # a dead holder's

    env = psql_env(conn, app=f"prisma-run-lock {p['owner']}"[:63])
    env["PGAPPNAME"] = f"prisma-run-lock {p['owner']}"[:63]
    with open(lease_path, "w"):
        pass
    os.chmod(lease_path, 0o600)
    _daemonize_and_hold(claim, psql, env, conn, RUN_LOCK_KEY, status_path, lease_path, p["lease"], watch)

    deadline = time.time() + p["timeout"]
    status = None
    while time.time() < deadline:
        status = read_json(status_path)
        if status:
            break
        time.sleep(0.02)  # the holder reports within one psql connection time
    if not status:
        os.unlink(lease_path)
        fail(f"the lock holder did not report within {p['timeout']} s: is {conn['host']}:{conn['port']} reachable?")
    if status["status"] != "held":
        os.unlink(lease_path)
        os.unlink(status_path)
    if status["status"] == "refused":
        _refuse_taken(module, p, result, psql, conn, fail)
    if status["status"] == "pooler":
        fail(pooler_refusal(status.get("error"), POOLER_WHAT))
    if status["status"] != "held":
        fail(
            f"could not take the run lock on database {conn['database']}: {first_line(status.get('error'), 'unknown error')}"
        )
    result.update(changed=True, holder_pid=status["pid"], watched_pid=watch[0] if watch else None)
    result["backend_pid"] = status["backend_pid"]
    module.exit_json(msg=f"run lock {RUN_LOCK_KEY} held on database {conn['database']} for {p['owner']}", **result)


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "state": {"type": "str", "choices": ["acquired", "renewed", "released"], "default": "acquired"},
            "owner": {"type": "str", "required": True},
            "state_dir": {"type": "path", "required": True},
            "lease": {"type": "int", "default": 7200},
            "watch_pid": {"type": "int"},
            "psql": {"type": "str", "default": "psql"},
            "timeout": {"type": "int", "default": 30},
        },
        supports_check_mode=False,
    )
    p = module.params
    result = {"changed": False, "holder_pid": None, "watched_pid": None, "backend_pid": None, "lock_key": RUN_LOCK_KEY}
    result.update(holders=[], lost_at=None, lost_reason=None)

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    os.makedirs(p["state_dir"], mode=0o700, exist_ok=True)
    status_path, lease_path = state_paths(p["state_dir"], p["owner"])

    if p["state"] == "renewed":
        problem = renew(p["state_dir"], p["owner"])
        if problem:
            result.update(_lost_fields(read_json(status_path)))
            fail(problem)
        module.exit_json(msg="run lock lease renewed (the holder saw the lock in the database)", **result)

    if p["state"] == "released":
        _release(module, p, result, status_path, lease_path)

    prune_stale(p["state_dir"], keep=status_path)
    try:
        with claimed(p["state_dir"], p["owner"], p["timeout"]) as claim:
            _acquire(module, p, result, fail, status_path, lease_path, claim)
    except ClaimTimeout:
        fail(
            f"another acquisition of the run lock for {p['owner']} on this host did not finish within"
            f" {p['timeout']} s: is a run stuck? nothing was changed by this run"
        )


if __name__ == "__main__":
    main()
