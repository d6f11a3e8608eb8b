"""What would make a migration queue the application behind it, read from the server (issue 19).

The classic outage of a migration is the lock queue: an ``ALTER TABLE`` waits
behind one long transaction, and every application query on that table waits
behind the ``ALTER``. This module reads, in one query, the sessions that would
start such a queue:

- sessions holding or waiting for a lock on a relation the pending SQL touches
  (the parser's plan names them);
- transactions older than ``max_transaction_age`` seconds, and sessions idle in
  a transaction (they hold their locks until they end), in this database;
- an anti-wraparound autovacuum on one of those relations (it does not give
  way to DDL as an ordinary autovacuum does);
- standbys whose replay lags more than ``max_replica_lag`` seconds.

A role without ``pg_read_all_stats`` (superusers have it) sees other roles'
sessions in ``pg_locks`` but not their state, age or query: lock holders are
still found, an old transaction of another role that holds no lock on these
tables yet is not (``sees_all`` false, said in the plan).

A blocker's query is shown with its literals removed (``normalize_query``): a
password in an ``ALTER ROLE`` or a customer's e-mail never reaches a log.

It also reads which mechanism carries ``lock_timeout`` and ``statement_timeout``
to the migration's session (``timeout_mechanism``). Nothing here terminates a
session. Pure Python, no Ansible import.
"""

from __future__ import annotations

import re

try:
    from ansible.module_utils.prisma_pg import quote_literal
except ImportError:  # unit tests import the file directly
    from prisma_pg import quote_literal

# A lock holder whose transaction is younger than this (seconds) is the application's ordinary traffic.
MIN_LOCK_AGE = 1.0

# Sessions of this project, never blockers of its own deploy: the run lock's holder (idle, a session
# lock) and the checks' own sessions.
OWN_APPS = ("prisma-run-lock", "prisma-migrate-ops", "prisma-deploy-check", "prisma-lock-check", "prisma-lock-sampler")

_STRING = re.compile(r"(?:[EeBbXxNn]|[Uu]&)?'(?:[^']|'')*'")
_DOLLAR = re.compile(r"(\$[A-Za-z_]*\$).*?\1", re.S)
_NUMBER = re.compile(r"(?<![A-Za-z_$0-9.])-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?(?![A-Za-z_0-9])")
_UNTERMINATED = re.compile(r"(?:'|\$[A-Za-z_]*\$).*", re.S)


def normalize_query(text: str | None, width: int = 80) -> str:
    """A query with every literal replaced by ``?`` (strings, dollar-quoted bodies, numbers), on one
    line, cut to ``width`` characters. A literal cut off by the server's query-text limit is removed
    to the end."""
    text = _DOLLAR.sub("?", text or "")
    text = _STRING.sub("?", text)
    text = _UNTERMINATED.sub("?", text)
    text = _NUMBER.sub("?", text)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def blockers_sql(relations: list, max_transaction_age: float, max_replica_lag: float,
                 min_lock_age: float = MIN_LOCK_AGE) -> str:  # fmt: skip
    """One JSON object: ``sessions`` (lock holders and waiters on ``relations`` whose transaction is at
    least ``min_lock_age`` seconds old - younger ones are the application's ordinary traffic, which
    ``lock_timeout`` bounds - old or idle-in-transaction transactions, anti-wraparound autovacuums on
    ``relations``), ``replicas`` (every standby, with ``lagging`` set when its replay lag exceeds
    ``max_replica_lag``), read in one statement. A session whose state this role cannot see is listed
    when it holds such a lock, with ``hidden`` set: ``wait_for_blockers`` keeps it only when a second
    read ``min_lock_age`` later still sees it."""
    rels = "ARRAY[" + ", ".join(quote_literal(r) for r in relations) + "]::text[]" if relations else "'{}'::text[]"
    own = "ARRAY[" + ", ".join(quote_literal(a) for a in OWN_APPS) + "]::text[]"
    age = float(max_transaction_age)
    lag = float(max_replica_lag)
    return f"""
WITH rel AS (
  SELECT r.name, to_regclass(r.name) AS oid FROM unnest({rels}) AS r(name)
), hit AS (
  SELECT l.pid, string_agg(DISTINCT (CASE WHEN l.granted THEN 'holds ' ELSE 'waits for ' END)
           || upper(regexp_replace(regexp_replace(l.mode, 'Lock$', ''), '([a-z])([A-Z])', '\\1 \\2', 'g'))
           || ' on ' || rel.name, ', ') AS locks
  FROM pg_locks l JOIN rel ON rel.oid IS NOT NULL AND l.locktype = 'relation' AND l.relation = rel.oid
  WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
  GROUP BY l.pid
), wrap AS (
  SELECT v.pid FROM pg_stat_progress_vacuum v JOIN rel ON rel.oid = v.relid
)
SELECT json_build_object(
  'sessions', coalesce((
    SELECT json_agg(json_build_object(
      'pid', a.pid, 'application_name', a.application_name, 'user', a.usename,
      'client_addr', coalesce(host(a.client_addr), CASE WHEN a.backend_type IS NULL THEN 'unknown' ELSE 'local socket' END),
      'state', coalesce(a.state, a.backend_type, 'state hidden from ' || current_user),
      'backend_type', a.backend_type, 'hidden', a.backend_type IS NULL,
      'xact_age_s', round(extract(epoch FROM now() - a.xact_start)::numeric, 1),
      'state_age_s', round(extract(epoch FROM now() - a.state_change)::numeric, 1),
      'locks', hit.locks, 'query', left(a.query, 2000),
      'why', CASE
        WHEN a.backend_type = 'autovacuum worker' THEN 'anti-wraparound autovacuum'
        WHEN hit.locks IS NOT NULL THEN 'lock'
        WHEN a.state LIKE 'idle in transaction%' THEN 'idle in transaction'
        ELSE 'old transaction' END) ORDER BY a.xact_start NULLS LAST, a.pid)
    FROM pg_stat_activity a LEFT JOIN hit ON hit.pid = a.pid
    WHERE a.pid <> pg_backend_pid()
      AND NOT (coalesce(a.application_name, '') LIKE ANY (SELECT o || '%' FROM unnest({own}) AS o))
      AND (
        (coalesce(a.backend_type, 'client backend') = 'client backend' AND a.datname = current_database() AND (
           (hit.locks IS NOT NULL
            AND (a.backend_type IS NULL OR a.xact_start < now() - make_interval(secs => {float(min_lock_age)})))
           OR a.state LIKE 'idle in transaction%'
           OR a.xact_start < now() - make_interval(secs => {age})))
        OR (a.backend_type = 'autovacuum worker' AND a.pid IN (SELECT pid FROM wrap)
            AND a.query ILIKE '%to prevent wraparound%'))), '[]'::json),
  'replicas', coalesce((
    SELECT json_agg(json_build_object(
      'pid', r.pid, 'application_name', r.application_name,
      'client_addr', coalesce(host(r.client_addr), 'local socket'), 'state', r.state,
      'replay_lag_s', round(extract(epoch FROM r.replay_lag)::numeric, 1),
      'lagging', coalesce(r.replay_lag > make_interval(secs => {lag}), false)) ORDER BY r.pid)
    FROM pg_stat_replication r), '[]'::json),
  'sees_all', pg_has_role(current_user, 'pg_read_all_stats', 'USAGE'))
"""


def describe_session(s: dict) -> str:
    """One line naming a blocking session: who, from where, in what state for how long, which locks,
    and the start of its query without literals."""
    app = s.get("application_name") or "(no application_name)"
    age = s.get("xact_age_s")
    state = s.get("state") or "?"
    if age is not None:
        timing = f"transaction open {age} s"
    elif s.get("state_age_s") is not None:
        timing = f"for {s['state_age_s']} s"
    else:
        timing = "age hidden"
    locks = f", {s['locks']}" if s.get("locks") else ""
    return (
        f"pid {s.get('pid')} ({app}, user {s.get('user')}, from {s.get('client_addr')}): {s.get('why')},"
        f" {state}, {timing}{locks}; query: {normalize_query(s.get('query')) or '(none)'}"
    )


def describe_replica(r: dict) -> str:
    app = r.get("application_name") or "(no application_name)"
    return (
        f"standby pid {r.get('pid')} ({app}, from {r.get('client_addr')}, {r.get('state')}):"
        f" replay lag {r.get('replay_lag_s')} s"
    )


def blocker_lines(found: dict, max_replica_lag: float) -> list:
    """One line per blocker: the sessions, then the standbys lagging more than ``max_replica_lag``."""
    lines = [describe_session(s) for s in found.get("sessions") or []]
    lines += [
        describe_replica(r) + f" (over {max_replica_lag:g} s)" for r in found.get("replicas") or [] if r.get("lagging")
    ]
    return lines


# -- which mechanism carries lock_timeout / statement_timeout to the migration's session ----------------------


def timeouts_sql() -> str:
    """The session's lock_timeout and statement_timeout (as the server applied them), and the settings
    ``ALTER ROLE/DATABASE ... SET`` gives this role in this database (``pg_db_role_setting``)."""
    return """
SELECT json_build_object(
  'user', current_user,
  'lock_timeout', current_setting('lock_timeout'),
  'statement_timeout', current_setting('statement_timeout'),
  'lock_timeout_ms', (SELECT setting::bigint FROM pg_settings WHERE name = 'lock_timeout'),
  'statement_timeout_ms', (SELECT setting::bigint FROM pg_settings WHERE name = 'statement_timeout'),
  'source', (SELECT source FROM pg_settings WHERE name = 'lock_timeout'),
  'role_settings', coalesce((
    SELECT json_agg(json_build_object('role', coalesce(r.rolname, 'every role'),
                                      'database', coalesce(d.datname, 'every database'), 'setting', c))
    FROM pg_db_role_setting s
    LEFT JOIN pg_roles r ON r.oid = s.setrole LEFT JOIN pg_database d ON d.oid = s.setdatabase
    CROSS JOIN LATERAL unnest(s.setconfig) AS c
    WHERE (s.setrole = 0 OR r.rolname = current_user)
      AND (s.setdatabase = 0 OR d.datname = current_database())
      AND (c LIKE 'lock_timeout=%' OR c LIKE 'statement_timeout=%')), '[]'::json))
"""


def duration_ms(value: str) -> float | None:
    """A PostgreSQL duration (``5s``, ``250ms``, ``2min``, ``0``; a bare number is milliseconds) in ms."""
    m = re.match(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(us|ms|s|min|h|d)?\s*$", str(value or ""))
    if not m:
        return None
    factor = {"us": 0.001, "ms": 1, "s": 1000, "min": 60000, "h": 3600000, "d": 86400000, None: 1}[m.group(2)]
    return float(m.group(1)) * factor


def _in_force(report: dict) -> dict:
    return {k: report.get(k) for k in ("lock_timeout", "statement_timeout")}


def timeout_mechanism(with_options: dict | None, without_options: dict, wanted: dict, pooled: bool,
                      migration_role: str = "") -> dict:  # fmt: skip
    """Which mechanism makes the migration's session run with ``wanted`` (``{"lock_timeout": "5s"}``).

    ``with_options`` is what a session opened with the URL's ``options`` (the way the deploy opens
    it) reported; ``None`` when that connection was refused (a pooler rejecting startup options).
    ``without_options`` is a plain session's report (role and database settings only). Returns
    ``{"mechanism": "url_options" | "role_setting" | "none", "in_force": {...}, "detail": text}``.
    """
    want_lock = duration_ms(wanted.get("lock_timeout", ""))
    role_lines = [
        f"{s['setting']} ({s['role']} in {s['database']})" for s in without_options.get("role_settings") or []
    ]

    def applied(report, name):
        return report is not None and float(report.get(f"{name}_ms") or 0)

    role_detail = (
        f"the settings of role {without_options.get('user')} (pg_db_role_setting: {', '.join(role_lines) or 'none'};"
        " they reach any engine and any pooler)"
    )
    if migration_role:
        if without_options.get("user") != migration_role:
            return {"mechanism": "none", "in_force": {},
                    "detail": f"migration_role is {migration_role} but the URL logs in as {without_options.get('user')}"}  # fmt: skip
        if not applied(without_options, "lock_timeout"):
            return {"mechanism": "none", "in_force": {},
                    "detail": f"migration_role {migration_role} has no lock_timeout: run once"
                    f" ALTER ROLE {migration_role} SET lock_timeout = '{wanted.get('lock_timeout') or '5s'}'"}  # fmt: skip
        return {"mechanism": "role_setting", "in_force": _in_force(without_options), "detail": role_detail}
    if not pooled and want_lock and applied(with_options, "lock_timeout") == want_lock:
        return {
            "mechanism": "url_options",
            "in_force": _in_force(with_options),
            "detail": "the URL's options parameter (the server applied it; Prisma's native engine and node-postgres"
            " send it at connection start)",
        }
    if applied(without_options, "lock_timeout"):
        return {"mechanism": "role_setting", "in_force": _in_force(without_options), "detail": role_detail}
    why = (
        "the URL goes through a pooler (pgbouncer=true), where startup options may be dropped"
        if pooled
        else "the server did not apply the URL's options"
        if want_lock
        else "migration_lock_timeout is empty"
    )
    return {
        "mechanism": "none",
        "in_force": {},
        "detail": f"{why}, and role {without_options.get('user')} has no lock_timeout setting",
    }


def _confirmed(found: dict, earlier: set | None) -> tuple[dict, set]:
    """``found`` without the hidden lock holders not also seen by the read before (``earlier``: their pids,
    None for a first read); and the hidden pids seen now."""
    hidden = {s["pid"] for s in found.get("sessions") or [] if s.get("hidden")}
    keep = [
        s for s in found.get("sessions") or [] if not s.get("hidden") or (earlier is not None and s["pid"] in earlier)
    ]
    return {**found, "sessions": keep}, hidden


def wait_for_blockers(query, relations: list, max_transaction_age: float, max_replica_lag: float, wait: float,
                      interval: float = 1.0, clock=None, sleep=None, min_lock_age: float = MIN_LOCK_AGE) -> dict:  # fmt: skip
    """Read the blockers (``query(sql)`` returns the JSON value), and while there are any, read again
    every ``interval`` seconds for up to ``wait`` seconds. Returns ``{"lines", "sessions", "replicas",
    "waited_s", "reads"}``: ``lines`` empty when the way is clear."""
    import time

    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    sql = blockers_sql(relations, max_transaction_age, max_replica_lag, min_lock_age)
    start = clock()
    reads = 0
    earlier = None
    while True:
        found, hidden = _confirmed(query(sql) or {}, earlier)
        reads += 1
        if hidden and earlier is None:  # a session this role cannot see: is it still there a moment later?
            earlier = hidden
            sleep(min_lock_age)
            found, hidden = _confirmed(query(sql) or {}, earlier)
            reads += 1
        earlier = hidden
        lines = blocker_lines(found, max_replica_lag)
        waited = clock() - start if wait else 0.0
        if not lines or waited >= wait:
            return {
                "lines": lines,
                "sessions": found.get("sessions") or [],
                "replicas": found.get("replicas") or [],
                "sees_all": found.get("sees_all", True),
                "waited_s": round(waited, 1),
                "reads": reads,
            }
        sleep(min(interval, max(0.0, wait - waited)))


# -- what the migration's locks cost the application, measured while it runs (the rehearsal's sampler) ----------

# Relations whose locks are Prisma's bookkeeping, not the application's tables.
_BOOKKEEPING = ("_prisma_migrations",)


def sample_sql(application_name: str) -> str:
    """One sample: the relation locks the migration's sessions (``application_name``) hold, with their
    current statement, and the sessions waiting behind them, with the relation they wait for."""
    app = quote_literal(application_name)
    name = (
        "(SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = {rel} AND n.nspname NOT IN ('pg_catalog', 'pg_toast', 'information_schema'))"
    )
    return f"""
WITH mig AS (SELECT pid, query FROM pg_stat_activity WHERE application_name = {app} AND pid <> pg_backend_pid())
SELECT json_build_object(
  't', extract(epoch FROM clock_timestamp()),
  'held', coalesce((
    SELECT json_agg(json_build_object('pid', l.pid, 'relation', r.name, 'mode', l.mode, 'query', left(m.query, 2000)))
    FROM pg_locks l JOIN mig m ON m.pid = l.pid
    CROSS JOIN LATERAL (SELECT {name.format(rel="l.relation")} AS name) r
    WHERE l.locktype = 'relation' AND l.granted AND r.name IS NOT NULL), '[]'::json),
  'waiting', coalesce((
    SELECT json_agg(json_build_object('pid', w.pid, 'relation', r.name))
    FROM pg_locks w CROSS JOIN LATERAL (SELECT {name.format(rel="w.relation")} AS name) r
    WHERE w.locktype = 'relation' AND NOT w.granted AND r.name IS NOT NULL
      AND w.pid NOT IN (SELECT pid FROM mig)
      AND pg_blocking_pids(w.pid) && ARRAY(SELECT pid FROM mig)), '[]'::json))
"""


def _mode_name(mode: str) -> str:
    """pg_locks' ``AccessExclusiveLock`` as the documentation writes it: ``ACCESS EXCLUSIVE``."""
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", mode.removesuffix("Lock")).upper()


# What an application's reads (ACCESS SHARE) and writes (ROW EXCLUSIVE) conflict with.
_BLOCKS = {
    "SHARE": "writes",
    "SHARE ROW EXCLUSIVE": "writes",
    "EXCLUSIVE": "writes",
    "ACCESS EXCLUSIVE": "reads and writes",
}


def summarize_samples(samples: list, interval: float) -> dict:
    """Per relation and lock mode, how long the migration held it (and during which statements), and per
    relation how long other sessions waited behind it. Each sample counts for the time to the next one
    (at most twice ``interval``: a late sample does not stretch a lock it did not see)."""
    held: dict = {}
    waits: dict = {}
    samples = [s for s in samples if isinstance(s, dict) and s.get("t") is not None]
    for i, sample in enumerate(samples):
        nxt = samples[i + 1]["t"] if i + 1 < len(samples) else sample["t"] + interval
        span = max(0.0, min(float(nxt) - float(sample["t"]), 2 * interval))
        for lock in sample.get("held") or []:
            if lock["relation"].split(".")[-1] in _BOOKKEEPING:
                continue
            mode = _mode_name(lock["mode"])
            entry = held.setdefault(
                (lock["relation"], mode),
                {"relation": lock["relation"], "mode": mode, "blocks": _BLOCKS.get(mode, "nothing"), "held_s": 0.0,
                 "statements": []},
            )  # fmt: skip
            entry["held_s"] += span
            text = normalize_query(lock.get("query"))
            if text and text not in entry["statements"]:
                entry["statements"].append(text)
        waiting: dict = {}
        for w in sample.get("waiting") or []:
            waiting.setdefault(w["relation"], set()).add(w["pid"])
        for relation, pids in waiting.items():
            entry = waits.setdefault(
                relation, {"relation": relation, "waited_s": 0.0, "max_waiters": 0, "waiter_s": 0.0}
            )
            entry["waited_s"] += span
            entry["waiter_s"] += span * len(pids)
            entry["max_waiters"] = max(entry["max_waiters"], len(pids))
    for entry in [*held.values(), *waits.values()]:
        for key in ("held_s", "waited_s", "waiter_s"):
            if key in entry:
                entry[key] = round(entry[key], 2)
    locks = sorted(held.values(), key=lambda e: (-e["held_s"], e["relation"], e["mode"]))
    # Per table: the most it blocked (reads and writes over writes alone), for the longest any lock of it
    # was held - never the label of a brief lower mode over the time of a stronger one.
    blocked: dict = {}
    for e in locks:
        if e["blocks"] != "nothing":
            seen = blocked.get(e["relation"], {"blocks": e["blocks"], "seconds": 0})
            blocks = "reads and writes" if "reads and writes" in (e["blocks"], seen["blocks"]) else "writes"
            blocked[e["relation"]] = {
                "relation": e["relation"],
                "blocks": blocks,
                "seconds": max(e["held_s"], seen["seconds"]),
            }
    return {
        "interval_s": interval,
        "samples": len(samples),
        "locks": locks,
        "waits": sorted(waits.values(), key=lambda e: (-e["waited_s"], e["relation"])),
        "blocked": sorted(blocked.values(), key=lambda e: (-e["seconds"], e["relation"])),
    }


class LockSampler:
    """A separate session that samples the migration's locks every ``interval`` seconds while the
    deploy runs (``start`` / ``stop``); ``stop`` returns ``summarize_samples``. Read-only; a failure of
    the sampler never fails the deploy (its error is returned)."""

    def __init__(self, psql: str, env: dict, application_name: str, interval: float = 0.05):
        self.psql, self.env, self.interval = psql, env, interval
        self.sql = " ".join(sample_sql(application_name).split()) + ";\n\\echo __sample_end__\n"
        self.samples: list = []
        self.error = None
        self._stop = None
        self._thread = None
        self._proc = None

    def start(self):
        import threading

        try:
            from ansible.module_utils.prisma_pg import open_session
        except ImportError:  # unit tests import the file directly
            from prisma_pg import open_session
        self._proc = open_session(self.psql, self.env)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _ask(self):
        import json

        self._proc.stdin.write(self.sql)
        self._proc.stdin.flush()
        lines = []
        for line in self._proc.stdout:
            if line.strip() == "__sample_end__":
                break
            lines.append(line)
        else:
            raise OSError("the sampler's session ended")
        text = "".join(lines).strip()
        return json.loads(text) if text else None

    def _run(self):
        import time

        while not self._stop.is_set():
            began = time.monotonic()
            try:
                sample = self._ask()
            except (OSError, ValueError) as exc:
                self.error = f"the lock sampler stopped: {exc}"
                return
            if sample:
                self.samples.append(sample)
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def stop(self) -> dict:
        try:
            from ansible.module_utils.prisma_pg import stop_child
        except ImportError:  # unit tests import the file directly
            from prisma_pg import stop_child
        if self._stop is not None:
            self._stop.set()
            self._thread.join(timeout=10)
        if self._proc is not None:
            stop_child(self._proc)
        summary = summarize_samples(self.samples, self.interval)
        summary["error"] = self.error
        return summary
