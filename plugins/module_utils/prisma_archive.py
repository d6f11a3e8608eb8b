"""Continuous WAL archiving and pgBackRest, for backup_method=restore_point (pure Python, no Ansible import).

A restore point is a name in the WAL (``pg_create_restore_point``): it costs a second whatever the size of
the database, and a point-in-time restore of the cluster's base backup plus the archived WAL up to it
brings back the state it names. That is only true while the archive works, so everything here is about
proving it: the server's own archiver statistics, a forced segment switch seen archived, and - for
pgBackRest - the repository's own account (``pgbackrest info --output=json``) of its backups and of the
WAL it holds.
"""

from __future__ import annotations

import json
import re
import time

MAX_ARCHIVE_AGE_S = 300  # the archiver's last success must be this recent (max_archive_age)
ARCHIVE_TIMEOUT_S = 60  # a switched WAL segment must be archived within this (archive_timeout)
RESTORE_POINT_SUFFIX = ".restore_point"  # the record of a restore point, beside its manifest

_SEGMENT = re.compile(r"^[0-9A-F]{24}$")

# What the server says of its archive, in one JSON value. Readable by any role: the archiver's
# statistics, the settings, the WAL position; the two functions a restore point needs are only
# checked for EXECUTE (superuser-only unless granted).
STATE_SQL = """
SELECT json_build_object(
  'archive_mode', current_setting('archive_mode'),
  'wal_level', current_setting('wal_level'),
  'in_recovery', pg_is_in_recovery(),
  'server_version', current_setting('server_version'),
  'user', current_user,
  'system_identifier', CASE WHEN has_function_privilege('pg_control_system()', 'execute')
    THEN (SELECT system_identifier::text FROM pg_control_system()) END,
  'timeline', CASE WHEN pg_is_in_recovery() THEN NULL
    ELSE ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END,
  'lsn', CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
  'can_switch_wal', has_function_privilege('pg_switch_wal()', 'execute'),
  'can_create_restore_point', has_function_privilege('pg_create_restore_point(text)', 'execute'),
  'now', to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
  'databases', (SELECT json_agg(datname ORDER BY datname) FROM pg_database WHERE NOT datistemplate),
  'archiver', (SELECT json_build_object(
      'archived_count', archived_count, 'last_archived_wal', last_archived_wal,
      'last_archived_at', to_char(last_archived_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'age_s', round(extract(epoch FROM now() - last_archived_time)::numeric, 1),
      'failed_count', failed_count, 'last_failed_wal', last_failed_wal,
      'last_failed_at', to_char(last_failed_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
      'failing', coalesce(last_failed_time > coalesce(last_archived_time, '-infinity'), false))
    FROM pg_stat_archiver))
"""

SWITCH_SQL = "SELECT pg_walfile_name(pg_switch_wal())"


def lsn_int(lsn: str) -> int:
    """``'0/3000050'`` as an integer (comparable)."""
    high, low = str(lsn).split("/")
    return (int(high, 16) << 32) | int(low, 16)


def segment_timeline(segment: str) -> int:
    return int(segment[:8], 16)


def archived(last_archived_wal: str | None, segment: str) -> bool:
    """Whether the archiver's last archived file shows ``segment`` archived: a later segment of the same
    timeline, or a segment of a later timeline (a ``.partial`` or ``.history`` file says nothing)."""
    last = (last_archived_wal or "").upper()
    if not _SEGMENT.match(last) or not _SEGMENT.match(segment):
        return False
    if segment_timeline(last) != segment_timeline(segment):
        return segment_timeline(last) > segment_timeline(segment)
    return last[8:] >= segment[8:]


def covers(archive_max: str | None, segment: str) -> bool:
    """Whether a repository's newest archived segment ``archive_max`` reaches ``segment``."""
    return archived(archive_max, segment)


def state_problems(state: dict, max_age_s: float, where: str) -> list[str]:
    """What stops a restore point from being trusted on this server, before anything is switched, each a
    sentence saying what to do. Empty when the archive looks healthy."""
    problems = []
    if state.get("in_recovery"):
        problems.append(f"{where} is a standby (in recovery): run against the primary")
    if state.get("archive_mode") not in ("on", "always"):
        problems.append(
            f"archive_mode is {state.get('archive_mode')} on {where}: a restore point needs continuous WAL"
            " archiving (archive_mode=on and an archive_command, then a restart), or use backup_method=pg_dump"
        )
        return problems
    missing = [
        name
        for name, key in (
            ("pg_create_restore_point(text)", "can_create_restore_point"),
            ("pg_switch_wal()", "can_switch_wal"),
        )
        if not state.get(key)
    ]
    if missing:
        problems.append(
            f"role {state.get('user')} may not run {' or '.join(missing)}: as a superuser,"
            f" GRANT EXECUTE ON FUNCTION {', '.join(missing)} TO {state.get('user')}"
        )
    if not state.get("system_identifier"):
        problems.append(
            f"role {state.get('user')} cannot read the cluster's system identifier (pg_control_system()), so the"
            f" archive cannot be checked to be this cluster's: GRANT pg_monitor TO {state.get('user')}, or EXECUTE ON"
            " FUNCTION pg_control_system()"
        )
    arch = state.get("archiver") or {}
    if arch.get("failing"):
        problems.append(
            f"the archiver is failing on {where}: WAL {arch.get('last_failed_wal')} failed at {arch.get('last_failed_at')}"
            f" ({arch.get('failed_count')} failure(s) since the statistics were reset), the last success was"
            f" {arch.get('last_archived_wal') or 'never'}: fix archive_command (see the server log)"
        )
    elif not arch.get("last_archived_at"):
        problems.append(f"the archiver on {where} has never archived a WAL segment: check archive_command")
    elif float(arch.get("age_s") or 0) > max_age_s:
        problems.append(
            f"the archiver's last success on {where} was {round(float(arch['age_s']))} s ago"
            f" (max_archive_age={max_age_s:g}): a quiet server needs archive_timeout set, or raise max_archive_age"
        )
    return problems


def switch_and_wait(query, timeout_s: float, where: str, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Close the current WAL segment (``pg_switch_wal``) and wait until the archiver reports it archived.
    ``query(sql)`` returns one JSON value. Returns {segment, archived_in_s, archiver}; raises
    ArchiveProblem when it is not archived within ``timeout_s``."""
    started = clock()
    segment = query(f"SELECT to_json(({SWITCH_SQL}))")
    while True:
        arch = query(f"SELECT (({STATE_SQL})::json) -> 'archiver'")
        if archived(arch.get("last_archived_wal"), segment):
            return {"segment": segment, "archived_in_s": round(clock() - started, 2), "archiver": arch}
        if clock() - started >= timeout_s:
            failure = (
                f" (last failure: {arch.get('last_failed_wal')} at {arch.get('last_failed_at')})"
                if arch.get("last_failed_wal")
                else ""
            )
            raise ArchiveProblem(
                f"WAL segment {segment} was not archived within {timeout_s:g} s on {where}{failure}; the archiver's"
                f" last success is {arch.get('last_archived_wal') or 'none'}: fix archive_command, or raise"
                " archive_timeout for a slow archive"
            )
        sleep(0.2)


class ArchiveProblem(Exception):
    """The archive cannot be trusted (one sentence saying what to do)."""


def manifest_record(manifest: dict) -> str:
    """The restore point's record file: what names the point, as canonical JSON (the manifest's sha256 is
    of it)."""
    keys = (
        "restore_point",
        "lsn",
        "timeline",
        "system_identifier",
        "segment",
        "created_at",
        "database",
        "host",
        "port",
    )
    return json.dumps({k: manifest.get(k) for k in keys}, sort_keys=True, indent=2) + "\n"


# --- pgBackRest ------------------------------------------------------------------------------------------


class InfoProblem(Exception):
    """``pgbackrest info`` says the repository cannot restore what is asked (one sentence)."""


def parse_info(text: str, stanza: str) -> dict:
    """The stanza's entry of ``pgbackrest info --output=json``."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise InfoProblem(f"pgbackrest info printed something that is not JSON ({str(text).strip()[:80]!r})") from exc
    for entry in data if isinstance(data, list) else []:
        if isinstance(entry, dict) and entry.get("name") == stanza:
            return entry
    raise InfoProblem(f"pgbackrest info knows no stanza {stanza!r}: check pgbackrest_stanza and the repository")


def _current_db(entry: dict, system_identifier: str | None) -> dict:
    dbs = entry.get("db") or []
    if system_identifier:
        mine = [db for db in dbs if str(db.get("system-id")) == str(system_identifier)]
        if not mine:
            known = ", ".join(str(db.get("system-id")) for db in dbs) or "none"
            raise InfoProblem(
                f"stanza {entry.get('name')} backs up another cluster (system identifier {known}, this server's is"
                f" {system_identifier}): point pgbackrest_stanza at this cluster's stanza"
            )
        return max(mine, key=lambda db: int(db.get("id") or 0))
    if not dbs:
        raise InfoProblem(f"stanza {entry.get('name')} lists no database")
    return max(dbs, key=lambda db: int(db.get("id") or 0))


def _segments_of(entry: dict, db_id) -> tuple[str | None, str | None]:
    for archive in entry.get("archive") or []:
        if (archive.get("database") or {}).get("id") == db_id:
            return archive.get("min"), archive.get("max")
    return None, None


def check_stanza(
    text: str,
    stanza: str,
    system_identifier: str | None,
    segment: str | None = None,
    target_lsn: str | None = None,
    timeline: int | None = None,
) -> dict:
    """Verify a stanza can restore this cluster: status ok, a full backup the archive can replay from, the
    archive reaching ``segment`` (the segment just archived), a backup on ``timeline`` (the server's, or the
    point's) and - for a restore to ``target_lsn`` - the newest good backup on that timeline that ended before
    it. Returns a summary; raises InfoProblem (also for an answer missing what it should hold)."""
    try:
        return _check_stanza(text, stanza, system_identifier, segment, target_lsn, timeline)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InfoProblem(
            f"pgbackrest info for stanza {stanza} lacks what this check reads ({type(exc).__name__}: {exc}):"
            " is pgBackRest older than 2.x? check its output by hand"
        ) from exc


def _check_stanza(text, stanza, system_identifier, segment, target_lsn, timeline) -> dict:
    entry = parse_info(text, stanza)
    status = entry.get("status") or {}
    if status.get("code") != 0:
        raise InfoProblem(
            f"stanza {stanza} is not usable: {status.get('message') or 'status ' + str(status.get('code'))}"
        )
    db = _current_db(entry, system_identifier)
    arch_min, arch_max = _segments_of(entry, db.get("id"))
    if not arch_max:
        raise InfoProblem(f"stanza {stanza} holds no archived WAL for this cluster: check archive_command")
    backups = [
        b
        for b in entry.get("backup") or []
        if not b.get("error")
        and (b.get("database") or {}).get("id") == db.get("id")
        and (b.get("archive") or {}).get("start")
        and (arch_min is None or (b["archive"]["start"][8:] >= arch_min[8:]))
    ]
    if not [b for b in backups if b.get("type") == "full"]:
        raise InfoProblem(
            f"stanza {stanza} has no full backup the archive can replay from: run pgbackrest --stanza={stanza}"
            " --type=full backup"
        )
    if segment and not covers(arch_max, segment):
        raise InfoProblem(
            f"stanza {stanza}'s archive ends at {arch_max}, before WAL segment {segment} that the server reports"
            " archived: the server archives somewhere else than this repository"
        )
    summary = {
        "stanza": stanza,
        "status": status.get("message"),
        "system_identifier": str(db.get("system-id")),
        "pg_version": db.get("version"),
        "archive_min": arch_min,
        "archive_max": arch_max,
        "full_backups": len([b for b in backups if b.get("type") == "full"]),
        "latest_backup": _backup_summary(max(backups, key=lambda b: b["timestamp"]["stop"])),
        "restore_set": None,
    }
    if timeline is None:
        return summary
    # Only a backup taken on the timeline itself is surely on its history: one of an earlier timeline may have
    # been taken on that timeline after the fork (before a rollback), which recovery cannot follow onto this one.
    mine = [b for b in backups if segment_timeline(b["archive"]["start"]) == int(timeline)]
    if not mine:
        raise InfoProblem(
            f"stanza {stanza} has no backup on timeline {int(timeline)}: after a point-in-time restore, take a backup"
            f" (pgbackrest --stanza={stanza} --type=full backup) before relying on restore points again"
        )
    if target_lsn:
        usable = [b for b in mine if lsn_int(b["lsn"]["stop"]) <= lsn_int(target_lsn)]
        if not usable:
            raise InfoProblem(
                f"stanza {stanza} has no backup on timeline {int(timeline)} that ended before LSN {target_lsn}: the"
                " restore point cannot be reached (the backups older than it were expired, or taken after it)"
            )
        summary["restore_set"] = _backup_summary(max(usable, key=lambda b: lsn_int(b["lsn"]["stop"])))
    return summary


def _backup_summary(backup: dict) -> dict:
    return {
        "label": backup.get("label"),
        "type": backup.get("type"),
        "stopped_at": backup.get("timestamp", {}).get("stop"),
        "lsn_stop": backup.get("lsn", {}).get("stop"),
        "size_bytes": (backup.get("info") or {}).get("size"),
        "repository_bytes": ((backup.get("info") or {}).get("repository") or {}).get("size"),
    }


def restore_argv(command: list, stanza: str, restore_point: str, timeline: int, backup_set: str) -> list:
    """The pgBackRest restore of the cluster to ``restore_point`` on ``timeline`` from ``backup_set``: only the
    files that differ are rewritten (``--delta``), and recovery promotes the server when it reaches the point."""
    return [
        *command,
        f"--stanza={stanza}",
        "--delta",
        "--type=name",
        f"--target={restore_point}",
        f"--target-timeline={int(timeline)}",
        "--target-action=promote",
        f"--set={backup_set}",
        "restore",
    ]
