"""Snapshot files and manifests (pure Python, no Ansible import)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
from fractions import Fraction

MANIFEST_SUFFIX = ".manifest.json"

# The free space a snapshot needs, as a multiple of the database size: the dump
# is usually smaller than the database, the margin covers what it is not (the
# preflight checks it, prisma_snapshot refuses below it).
SPACE_MARGIN = 1.2

# From this size on, a multi-core host dumps faster in directory format with one
# job per core (bench/migrate_overhead.py: 1.3x at 117 MB and 1.1 GB on 2 cores;
# equal on a few MB).
AUTO_DIRECTORY_MIN_BYTES = 64 * 1024 * 1024


def choose_format(requested: str, jobs: int, size_bytes: int, cpus: int | None) -> tuple[str, int]:
    """(pg_dump format, jobs). ``auto``: directory with a job per core (2 to 4) for
    databases of AUTO_DIRECTORY_MIN_BYTES or more on hosts with 2 cores or more;
    custom (one file) otherwise. An explicit format keeps the jobs it was given."""
    if requested != "auto":
        return requested, jobs
    cpus = cpus or 1
    if size_bytes >= AUTO_DIRECTORY_MIN_BYTES and cpus >= 2:
        return "directory", jobs if jobs > 1 else min(cpus, 4)
    return "custom", 1


def room_for_snapshot(free_bytes: int | None, size_bytes: int, ratio: float = SPACE_MARGIN) -> tuple[int, bool]:
    """The one free-space rule: (bytes needed, whether ``free_bytes`` is enough) for a snapshot of a
    database of ``size_bytes``. Needed is ``size_bytes`` times ``ratio``, rounded up (the ratio read as
    the decimal it was written as, so that 5 bytes x 1.2 need 6, not 7). ``free_bytes`` None - no
    folder to check - is enough."""
    needed = math.ceil(Fraction(int(size_bytes)) * Fraction(repr(float(ratio))))
    return needed, free_bytes is None or int(free_bytes) >= needed


def nearest_existing(path: str) -> str:
    """``path``, or its nearest parent that exists."""
    while path and not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path or "/"


def free_bytes(path: str) -> int:
    """Free bytes (for this user) of the file system holding ``path`` or its nearest existing parent."""
    st = os.statvfs(nearest_existing(path))
    return st.f_bavail * st.f_frsize


def sha256_of(path: str) -> str:
    """SHA-256 of a file; for a directory-format dump, of every file's name and content in name order."""
    digest = hashlib.sha256()
    if os.path.isdir(path):
        for name in sorted(os.listdir(path)):
            digest.update(name.encode() + b"\0")
            with open(os.path.join(path, name), "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
        return digest.hexdigest()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def size_of(path: str) -> int:
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path))
    return os.path.getsize(path)


def remove(path: str) -> None:
    if os.path.isdir(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.exists(path):
        os.unlink(path)


def read_manifest(path: str) -> dict | None:
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def manifests(folder: str) -> list[tuple[str, dict]]:
    """(manifest path, manifest) for every readable manifest in ``folder``, newest first."""
    found = []
    if not os.path.isdir(folder):
        return found
    for name in os.listdir(folder):
        if name.endswith(MANIFEST_SUFFIX):
            path = os.path.join(folder, name)
            data = read_manifest(path)
            if data and data.get("file"):
                found.append((path, data))
    found.sort(key=lambda item: (item[1].get("started_at", ""), item[1]["file"]), reverse=True)
    return found


def snapshot_key(data: dict) -> tuple:
    """What a snapshot belongs to, from a manifest or a parsed URL: (host, port, database, schema).
    Manifests written before the schema was recorded have none: they are read as ``public``, the
    schema Prisma uses when the URL names none (and the only one those versions dumped by default)."""
    return (
        str(data.get("host") or "").lower(),
        int(data.get("port") or 5432),
        data.get("database"),
        data.get("schema") or "public",
    )


def same_target(manifest: dict, other: dict) -> bool:
    """True when both describe the same schema of the same database: equal snapshot_key, and the same
    cluster (``system_identifier``) when both know it - a restored or re-created cluster behind the
    same address is another target."""
    if snapshot_key(manifest) != snapshot_key(other):
        return False
    ids = (manifest.get("system_identifier"), other.get("system_identifier"))
    return None in ids or ids[0] == ids[1]


# The older name: the comparison is per schema now (one schema per tenant in one database).
same_database = same_target


def write_manifest(path: str, manifest: dict) -> None:
    """Write a manifest, mode 0600 from its creation."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(manifest, fh, indent=2, sort_keys=True)


def apply_retention(folder: str, target: dict, keep: int, current: str, protect=()) -> list[str]:
    """Keep the newest ``keep`` snapshots of this target and method (a pg_dump or a restore point's record) -
    host, port, database and schema (see same_target; ``target`` is the new snapshot's manifest or a parsed
    URL) - in ``folder`` and delete
    the older ones with their manifests - never ``current`` (a file name) nor a path in ``protect``, and
    nothing without a manifest of this target. Returns the files deleted."""
    protected = {os.path.basename(x.rstrip("/")) for x in protect}
    method = target.get("method", "pg_dump")  # dumps and restore point records are kept apart
    mine = [
        (data["file"], os.path.basename(path))
        for path, data in manifests(folder)
        if same_target(data, target) and data.get("method", "pg_dump") == method
    ]
    removed = []
    for file, manifest_name in mine[keep:]:
        if file == current or file in protected:
            continue
        remove(os.path.join(folder, file))
        remove(os.path.join(folder, manifest_name))
        removed.append(file)
    return removed
