"""The run lock's state on the host that holds it (shared by prisma_run_lock and
the deploy's last check in prisma_command).

The holder process keeps the session that holds the advisory lock; it writes
``run-lock-<tag>.json`` (its pid and status) and ends the session when the
``.lease`` file is removed or is older than the lease. Pure standard library.
"""

from __future__ import annotations

import hashlib
import json
import os


def state_paths(state_dir: str, owner: str) -> tuple[str, str]:
    """The holder's status file and lease file for this owner."""
    tag = hashlib.sha256(owner.encode()).hexdigest()[:16]
    return os.path.join(state_dir, f"run-lock-{tag}.json"), os.path.join(state_dir, f"run-lock-{tag}.lease")


def renew(state_dir: str, owner: str) -> str | None:
    """Renew the lease of a lock this owner holds; return why not, or None."""
    status_path, lease_path = state_paths(state_dir, owner)
    status = read_json(status_path) or {}
    if not os.path.exists(lease_path) or status.get("status") != "held" or not alive(status.get("pid")):
        return (
            f"the run lock of {owner} is no longer held (lease expired, or the holder's connection dropped):"
            " stop here - another run could start; run again from the beginning"
        )
    os.utime(lease_path)
    return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def started_before(pid, moment):
    """Whether process pid started before the epoch time moment (so it is not a later
    process that was given a dead holder's pid)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat") as fh:
            boot = next(int(line.split()[1]) for line in fh if line.startswith("btime "))
    except (OSError, ValueError, IndexError, StopIteration):
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
