"""Filters that parse Prisma CLI output registered by other tasks.

``prisma_status``: text of ``prisma migrate status`` -> the facts of
``prisma_migrate_info``. ``prisma_deploy``: text of ``prisma migrate deploy``
-> ``result``, ``applied``, ``failed_migration``, ``error_code`` …
Both share the parser in ``plugins/module_utils/prisma_status.py``.
"""

from __future__ import annotations

import os
import sys

# module_utils are shipped to hosts with modules; on the controller a filter
# imports the same file from the project's plugins/module_utils folder.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "module_utils"))

from prisma_status import parse_migrate_deploy, parse_migrate_status  # noqa: E402


def _text(value) -> str:
    if isinstance(value, dict):  # a registered command result
        return f"{value.get('stdout', '')}\n{value.get('stderr', '')}"
    if value is None:
        return ""
    return str(value)


def _rc(value, rc):
    if rc is None and isinstance(value, dict):
        return value.get("rc")
    return rc


def prisma_status(value, rc=None):
    """Parse `prisma migrate status` output (a string or a registered result)."""
    return parse_migrate_status(_text(value), _rc(value, rc))


def prisma_deploy(value, rc=None):
    """Parse `prisma migrate deploy` output (a string or a registered result)."""
    return parse_migrate_deploy(_text(value), _rc(value, rc))


def prisma_row_loss(before, after, loses_rows=None, schema="public"):
    """Tables of ``schema`` with fewer rows after the run than in the snapshot manifest, except exactly the
    relations the pending SQL drops or deletes rows from (``loses_rows``: schema-qualified, as the parser
    names them, so ``DROP TABLE audit."User"`` does not excuse ``public."User"``)."""
    excused = {str(r) for r in (loses_rows or [])}
    lost = []
    for table, count in sorted((before or {}).items()):
        if f"{schema or 'public'}.{table}" in excused or table == "_prisma_migrations":
            continue
        now = (after or {}).get(table)
        if now is None or int(now) < int(count):
            lost.append({"table": table, "before": int(count), "after": None if now is None else int(now)})
    return lost


def to_timezone(value, zone="Europe/Athens"):
    """An ISO-8601 UTC time (``2024-01-01T00:00:00Z``) shown in another zone."""
    import datetime
    from zoneinfo import ZoneInfo

    moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)  # noqa: UP017
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def prisma_stage_durations(marks, end):
    """Seconds per stage from the stage start marks (``{stage: iso time}``)
    and the end time: each stage lasts until the next one starts."""
    import datetime

    def parse(value):
        moment = datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)

    ordered = sorted((parse(v), k) for k, v in (marks or {}).items())
    out = {}
    for i, (start, name) in enumerate(ordered):
        stop = ordered[i + 1][0] if i + 1 < len(ordered) else parse(end)
        out[name] = round((stop - start).total_seconds(), 1)
    return out


def prisma_rollout_batch_size(value):
    """``rollout_batch_size`` as a whole number of targets, 1 or more, or one clear error."""
    from ansible.errors import AnsibleFilterError

    try:
        size = int(str(value).strip())
    except (TypeError, ValueError):
        size = 0
    if size < 1:
        raise AnsibleFilterError(
            f"rollout_batch_size must be a whole number of targets, 1 or more (got {value!r}): fix -e rollout_batch_size."
        )
    return size


def prisma_rollout_batches(hosts, size=4, canary=None):
    """The batches a rollout runs in, as the migrate play's ``serial: [1, size]``
    forms them: the canary alone (``canary``, else the first target), then the
    others ``size`` at a time, in order."""
    size = prisma_rollout_batch_size(size)
    hosts = list(hosts or [])
    if canary in hosts:
        hosts.remove(canary)
        hosts.insert(0, canary)
    if not hosts:
        return []
    return [hosts[:1]] + [hosts[i : i + size] for i in range(1, len(hosts), size)]


def prisma_rollout_before(batches, host):
    """The targets of the batches before the one holding ``host``."""
    before = []
    for batch in batches or []:
        if host in batch:
            return before
        before.extend(batch)
    return before


def prisma_url_identity(url):
    """``host:port/database`` of a Prisma URL, without credentials, or ``invalid``."""
    from prisma_url import DatabaseUrlError, parse_database_url

    try:
        conn = parse_database_url(url)
    except DatabaseUrlError:
        return "invalid"
    return f"{conn['host'].lower()}:{conn['port']}/{conn['database']}"


def prisma_rehearsal_key(pending_checksums):
    """The name a rehearsal's measurements are kept under: the SHA-256 of the pending migrations'
    names and checksums, in order, so that only a production run of exactly these migrations finds it."""
    import hashlib

    text = "\n".join(f"{name}:{sha}" for name, sha in sorted((pending_checksums or {}).items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def prisma_rehearsal_text(record, relations=None):
    """One line quoting a rehearsal's measurements: where and when, and how long each table's reads or
    writes were blocked (``relations`` keeps the tables named, all by default)."""
    if not record:
        return ""
    observed = record.get("locks_observed") or {}
    parts = [
        f"{b['blocks']} of {b['relation']} blocked {b['seconds']:g} s"
        for b in observed.get("blocked") or []
        if relations is None or b["relation"] in relations
    ]
    waits = [f"{w['max_waiters']} session(s) queued behind it on {w['relation']} for {w['waited_s']:g} s"
             for w in observed.get("waits") or []]  # fmt: skip
    where = f"{record.get('host')}/{record.get('database')}"
    return (
        f"rehearsed {record.get('rehearsed_at')} on {where}: "
        + ("; ".join(parts + waits) or "no lock that blocks the application's reads or writes was seen")
        + (f" (migrate deploy {record['migrate_deploy_s']:g} s)" if record.get("migrate_deploy_s") else "")
    )


def prisma_canary_over(observed, rehearsal, ratio=1.5, floor=0.5):
    """The tables the canary blocked longer than its rehearsal did, by more than ``ratio`` (and more than
    ``floor`` seconds: a few samples of difference on a brief lock is noise), one line each; empty
    without a rehearsal or a measure."""
    if not observed or not rehearsal:
        return []
    before = {b["relation"]: b["seconds"] for b in (rehearsal.get("locks_observed") or {}).get("blocked") or []}
    over = []
    for b in observed.get("blocked") or []:
        was = before.get(b["relation"], 0.0)
        if b["seconds"] > was * float(ratio) and b["seconds"] - was > float(floor):
            over.append(
                f"{b['blocks']} of {b['relation']} blocked {b['seconds']:g} s on the canary, {was:g} s in the rehearsal"
                f" of {rehearsal.get('rehearsed_at')}"
            )
    return over


class FilterModule:
    def filters(self):
        return {
            "prisma_status": prisma_status,
            "prisma_deploy": prisma_deploy,
            "prisma_row_loss": prisma_row_loss,
            "to_timezone": to_timezone,
            "prisma_stage_durations": prisma_stage_durations,
            "prisma_url_identity": prisma_url_identity,
            "prisma_rollout_batches": prisma_rollout_batches,
            "prisma_rollout_batch_size": prisma_rollout_batch_size,
            "prisma_rollout_before": prisma_rollout_before,
            "prisma_rehearsal_key": prisma_rehearsal_key,
            "prisma_rehearsal_text": prisma_rehearsal_text,
            "prisma_canary_over": prisma_canary_over,
        }
