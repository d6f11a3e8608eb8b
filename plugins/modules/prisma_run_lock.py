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
    since when.
  - The holder names its session C(prisma-run-lock <owner>) so that other runs can tell who holds it.
  - No stale lock - the lock is a session lock, so it disappears with the session. The holder ends
    the session when the run releases it (I(state=released)), when the process it watches exits
    (the local C(ansible-playbook) found by walking up the process tree, or I(watch_pid)), when its
    lease file has not been renewed for I(lease) seconds (I(state=renewed)), or when the database
    connection drops.
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
    description: Folder for the holder's state and lease files (created 0700).
    type: path
    required: true
  lease:
    description: Seconds without a renewal after which the holder gives the lock up by itself.
    type: int
    default: 7200
  watch_pid:
    description:
      - PID whose exit releases the lock. Default - the nearest C(ansible-playbook) or C(ansible-runner)
        ancestor of this module on this host (local connection); none over SSH.
    type: int
  psql:
    description: The C(psql) client.
    type: str
    default: psql
  timeout:
    description: Seconds to wait for the holder to report.
    type: int
    default: 30
notes:
  - I(database_url) is needed to take the lock (I(state=acquired)); renewing and releasing work on the
    holder's files in I(state_dir) and do not connect.
attributes:
  check_mode:
    support: none
    description: Never runs in check mode (it would take the lock).
  diff_mode:
    support: none
seealso:
  - module: prisma_database_info
"""

EXAMPLES = r"""
- name: Take the run lock
  prisma_run_lock:
    database_url: "{{ database_url }}"
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
  description: The PID whose exit releases the lock, when it was acquired; else null.
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
"""

import json
import os
import signal
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_pg import (
    RUN_LOCK_KEY,
    client_tools,
    describe_holders,
    first_line,
    lock_holders_sql,
    open_session,
    psql_env,
    stop_child,
)
from ansible.module_utils.prisma_runlock import alive, read_json, renew, started_before, state_paths, write_json
from ansible.module_utils.prisma_url import redact


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


def _holder(psql, env, sql_lock, status_path, lease_path, lease, watch_pid):
    """Runs in the detached grandchild: hold the session until told to stop."""
    proc = open_session(psql, env)
    proc.stdin.write(sql_lock + "\n")
    proc.stdin.flush()
    answer = proc.stdout.readline().strip()
    if answer != "t":
        err = ""
        if answer != "f":
            proc.stdin.close()
            err = proc.stderr.read()
        proc.kill()
        write_json(status_path, {"status": "refused" if answer == "f" else "error", "error": err.strip()[:500]})
        return
    write_json(status_path, {"status": "held", "pid": os.getpid(), "since": time.time()})
    try:
        while True:
            time.sleep(0.5)
            if proc.poll() is not None:
                break  # the session ended: the lock is gone with it
            if watch_pid and not alive(watch_pid):
                break
            try:
                if time.time() - os.stat(lease_path).st_mtime > lease:
                    break
            except OSError:
                break  # lease file removed: released
    finally:
        stop_child(proc)
        status = read_json(status_path) or {}
        if status.get("pid") == os.getpid():
            os.unlink(status_path)


def _daemonize_and_hold(*args):
    if os.fork() > 0:
        return
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
    try:
        _holder(*args)
    finally:
        os._exit(0)


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
    result = {"changed": False, "holder_pid": None, "watched_pid": None, "lock_key": RUN_LOCK_KEY, "holders": []}

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    os.makedirs(p["state_dir"], mode=0o700, exist_ok=True)
    status_path, lease_path = state_paths(p["state_dir"], p["owner"])

    if p["state"] == "renewed":
        problem = renew(p["state_dir"], p["owner"])
        if problem:
            fail(problem)
        module.exit_json(msg="run lock lease renewed", **result)

    if p["state"] == "released":
        status = read_json(status_path)
        if os.path.exists(lease_path):
            os.unlink(lease_path)  # the holder sees it and ends its session
            result["changed"] = True
        pid = (status or {}).get("pid")
        if not (pid and alive(pid) and started_before(pid, (status or {}).get("since", 0))):
            pid = None  # gone already (a later process may have its pid)
        else:
            os.kill(pid, signal.SIGTERM)  # the holder ends its session at once instead of at its next poll
        deadline = time.time() + p["timeout"]
        while pid and alive(pid) and time.time() < deadline:
            time.sleep(0.05)
        module.exit_json(msg="run lock released" if result["changed"] else "run lock was not held", **result)

    conn = connect(p, fail)
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    if os.path.exists(status_path):
        old = read_json(status_path) or {}
        if old.get("status") == "held" and alive(old.get("pid")):
            fail(f"this run ({p['owner']}) already holds the lock (holder pid {old.get('pid')})")
        os.unlink(status_path)

    env = psql_env(conn, app=f"prisma-run-lock {p['owner']}"[:63])
    env["PGAPPNAME"] = f"prisma-run-lock {p['owner']}"[:63]
    watch = p["watch_pid"] or _ancestor_playbook_pid()
    with open(lease_path, "w"):
        pass
    os.chmod(lease_path, 0o600)
    _daemonize_and_hold(
        psql, env, f"SELECT pg_try_advisory_lock({RUN_LOCK_KEY});", status_path, lease_path, p["lease"], watch
    )

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
    if status["status"] == "refused":
        os.unlink(lease_path)
        os.unlink(status_path)
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
    if status["status"] != "held":
        os.unlink(lease_path)
        os.unlink(status_path)
        fail(
            f"could not take the run lock on database {conn['database']}: {first_line(status.get('error'), 'unknown error')}"
        )
    result.update(changed=True, holder_pid=status["pid"], watched_pid=watch)
    module.exit_json(msg=f"run lock {RUN_LOCK_KEY} held on database {conn['database']} for {p['owner']}", **result)


if __name__ == "__main__":
    main()
