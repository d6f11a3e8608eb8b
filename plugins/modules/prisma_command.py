#!/usr/bin/python
"""Ansible module: prisma_command."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_command
short_description: Run C(prisma generate), C(prisma migrate deploy) or C(prisma validate)
description:
  - Runs one Prisma CLI command in the project directory with C(DATABASE_URL) in its environment
    only, and returns its output with the password removed and its duration.
  - For C(migrate_deploy) the output is parsed (C(parse_migrate_deploy)) - the applied migrations,
    the failed migration, the Prisma and database error codes. It fails when Prisma reports that it
    created the database (a typo in the URL would otherwise give an empty, fully migrated database).
  - C(generate) runs one at a time per checkout on the host (a lock file in the checkout's C(node_modules)).
  - I(lock_timeout) and I(statement_timeout) reach the migration's session in the URL's C(options) query
    parameter, which Prisma's native schema engine (quaint) and node-postgres (C(@prisma/adapter-pg)) send
    at connection start - the native engine reads no libpq environment variable - and in C(PGOPTIONS).
    A URL with C(pgbouncer=true) gets no startup options (a pooler may refuse them); the role's settings
    must carry them there (M(prisma_lock_info) checks which mechanism is in force).
  - For C(migrate_deploy), a lock timeout (SQLSTATE 55P03) of a migration listed in I(retry_safe), which the
    history shows failed with nothing else unfinished, is marked rolled back (C(prisma migrate resolve
    --rolled-back)) and tried again, up to I(lock_retries) times, after a pause of I(retry_backoff) times
    2^attempt seconds plus jitter, the last checks and I(blockers) checked again before each try.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  project_dir:
    description: The application checkout holding C(package.json) and C(prisma/).
    type: path
    required: true
  subcommand:
    description: What to run.
    type: str
    required: true
    choices: [generate, migrate_deploy, validate]
  command:
    description:
      - The Prisma command prefix, found as in M(prisma_migrate_info). The default C(prisma) is the
        checkout's C(node_modules/.bin/prisma); C(pnpm exec prisma) or C(npx --no-install prisma) also work.
    type: str
    default: prisma
  schema:
    description: Path to the schema, passed as C(--schema).
    type: path
  environment:
    description: Variables added to the command's environment (never C(DATABASE_URL); the URL is I(database_url)).
    type: dict
    default: {}
  lock_timeout:
    description: PostgreSQL C(lock_timeout) for the session (for example C(5s)); empty for the server default.
    type: str
    default: ""
  statement_timeout:
    description: PostgreSQL C(statement_timeout) for the session; empty for the server default.
    type: str
    default: ""
  generate_first:
    description:
      - For C(migrate_deploy), run C(prisma generate) first, in the same module run (one module start-up
        less). A failing generate stops the module before the deploy starts, so nothing is migrated; its
        output comes back in I(generate).
    type: bool
    default: false
  expect_pending:
    description:
      - For C(migrate_deploy), the migrations the operator confirmed, name to SHA-256 of C(migration.sql)
        (C(pending_checksums) of M(prisma_migration_history_info)). Right before the deploy the module reads
        the history again and refuses, changing nothing, unless the pending migrations are exactly these.
    type: dict
  run_lock:
    description:
      - For C(migrate_deploy), the run lock this run must hold (C(owner) and C(state_dir), as given to
        M(prisma_run_lock)). Right before the deploy its lease is renewed; the module refuses, changing
        nothing, when the lock is no longer held.
    type: dict
  application_name:
    description: The C(application_name) of the deploy's sessions when the URL sets none (the rehearsal's lock sampler finds them by it).
    type: str
    default: prisma-migrate-deploy
  blockers:
    description:
      - For C(migrate_deploy), the blocker check of M(prisma_lock_info) run right before the deploy and before
        each retry - C(relations), C(max_transaction_age), C(max_replica_lag), C(wait). The module refuses,
        changing nothing more, while a blocker remains after C(wait) seconds. Nothing is ever terminated.
    type: dict
  lock_retries:
    description: For C(migrate_deploy), how many times a lock timeout of a I(retry_safe) migration is retried.
    type: int
    default: 0
  retry_safe:
    description:
      - The migrations that leave nothing behind when they fail (the migration plan's C(retry_safe) - one
        statement besides SET, not in a DO block, not CONCURRENTLY). Only these are retried.
    type: list
    elements: str
    default: []
  retry_backoff:
    description: Seconds of the first pause before a retry; doubled each time, plus up to as much jitter.
    type: float
    default: 2.0
  lock_sample_interval:
    description:
      - For C(migrate_deploy), seconds between two samples of the migration's locks, taken by a separate
        read-only session while Prisma runs (C(pg_locks), C(pg_stat_activity), C(pg_blocking_pids)); C(0) takes none.
    type: float
    default: 0.05
  psql:
    description: The psql program, for I(expect_pending), I(blockers), the lock sampler and the history read after a failure.
    type: str
    default: psql
  timeout:
    description: Seconds after which the command is stopped and the module fails. C(0) means no limit.
    type: int
    default: 3600
attributes:
  check_mode:
    support: partial
    description: C(validate) runs in check mode; C(generate) and C(migrate_deploy) are skipped.
  diff_mode:
    support: none
seealso:
  - module: prisma_migrate_info
"""

EXAMPLES = r"""
- name: Generate the client, then apply the pending migrations
  prisma_command:
    project_dir: /srv/app
    subcommand: migrate_deploy
    generate_first: true
    database_url: "{{ database_url }}"
    lock_timeout: 5s
    expect_pending: "{{ plan.pending_checksums }}"
    run_lock: {owner: "{{ run_lock_owner }}", state_dir: /var/backups/prisma/.locks}
  register: __deploy
"""

RETURN = r"""
command_rc:
  description: The command's exit code (not C(rc), which Ansible would read as the task's failure).
  returned: always
  type: int
stdout:
  description: Standard output, password removed.
  returned: always
  type: str
stderr:
  description: Standard error, password removed.
  returned: always
  type: str
duration_s:
  description: Seconds the command took.
  returned: always
  type: float
lock_wait_s:
  description: >-
    Seconds spent waiting for another C(prisma generate) in the same checkout on this host (one runs at a
    time per checkout, so the targets of a fleet sharing a release do not write the client files at once);
    null when the command did not run.
  returned: always
  type: float
cmd:
  description: The command that ran (without the URL).
  returned: always
  type: list
  elements: str
deploy:
  description:
    - For C(migrate_deploy), the parsed output - result, applied, failed_migration, error_code, database_error ...
    - Empty when the deploy did not start (a failed I(generate_first), or a last check that refused).
    - After a deploy that did not succeed, C(database_after) is what C(_prisma_migrations) shows then
      (C(read), C(error), C(applied), C(failed), C(in_progress), C(newly_applied) - the migrations of
      I(expect_pending) now applied, null without it) and C(database_changed) says whether the deploy may
      have changed the database (a migration recorded failed, unfinished or newly applied), null when the
      history could not be read. The next step is decided from these, not from Prisma's wording.
  returned: always
  type: dict
attempts:
  description:
    - For C(migrate_deploy), each try - attempt, result, failed_migration, database_error_code, duration_s, and
      for a retried one resolved_rolled_back and pause_s. Empty until the deploy ran.
  returned: always
  type: list
  elements: dict
blocker_checks:
  description: For C(migrate_deploy) with I(blockers), each check before a try - blockers (one line each) and waited_s.
  returned: always
  type: list
  elements: dict
locks_observed:
  description:
    - For C(migrate_deploy) with I(lock_sample_interval), what the sampler saw over every try - C(locks) (per
      relation and mode - blocks, held_s, statements without literals), C(waits) (per relation - waited_s,
      max_waiters, waiter_s of the sessions queued behind the migration), C(blocked) (per relation, the longest
      time the application's reads or writes were blocked), C(samples), C(interval_s), C(error). Null otherwise.
  returned: always
  type: dict
application_name:
  description: The C(application_name) the migration's sessions run under; null before the module read the URL.
  returned: always
  type: str
generate:
  description:
    - With I(generate_first), what C(prisma generate) did - C(command_rc), C(stdout), C(stderr), C(cmd),
      C(duration_s), C(lock_wait_s), C(msg). Empty without I(generate_first), or when it did not run.
  returned: always
  type: dict
"""

import contextlib
import fcntl
import os
import random
import re
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_cli import (
    RC_TIMEOUT,
    PrismaCliError,
    check_project,
    first_error_line,
    hide_from_result,
    run_prisma,
)
from ansible.module_utils.prisma_connection import (
    connection_argument_spec,
    refuse_url_in_environment,
    require_database_url,
    schema_dir,
)
from ansible.module_utils.prisma_history import local_migrations, read_history
from ansible.module_utils.prisma_locks import LockSampler, wait_for_blockers
from ansible.module_utils.prisma_pg import client_tools, psql_env, psql_json, target_connection
from ansible.module_utils.prisma_runlock import renew
from ansible.module_utils.prisma_status import parse_migrate_deploy
from ansible.module_utils.prisma_url import env_secrets, redact, session_url

ARGS = {"generate": ["generate"], "migrate_deploy": ["migrate", "deploy"], "validate": ["validate"]}


@contextlib.contextmanager
def checkout_lock(project_dir, wanted, timeout):
    """One ``prisma generate`` at a time per checkout on this host: a fleet's
    targets share the release, and parallel generates would write the same
    client files at once. The lock file lives where generate writes (the
    checkout's node_modules), so whoever may generate may lock. Other
    subcommands do not write the checkout."""
    if not wanted:
        yield
        return
    modules = os.path.join(project_dir, "node_modules")
    path = os.path.join(modules if os.path.isdir(modules) else project_dir, ".prisma-generate.lock")
    try:
        handle = open(path, "a")  # noqa: SIM115 (held for the whole command)
    except OSError as exc:
        raise PrismaCliError(
            f"cannot create the generate lock {path}: {exc.strerror}; check the checkout's owner"
        ) from exc
    deadline = time.monotonic() + (timeout or 3600)
    with handle:
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise PrismaCliError(
                        f"another prisma generate held {path} for over {timeout or 3600} s: is a run stuck?"
                    ) from None
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def last_checks(module, p, migrations_dir, fail, result, expected):
    """What must still hold the moment before the deploy (and before each retry): this run's lock, the
    pending migrations the operator confirmed (names and contents; ``expected``, less those a retried
    deploy already applied), and no session the migration would queue the application behind."""

    def refuse(msg):
        result["deploy"] = result.get("deploy") or {}  # empty: it never started
        fail(msg + (" Nothing was migrated." if not result["deploy"] else ""))

    lock = p["run_lock"]
    if lock:
        if not lock.get("owner") or not lock.get("state_dir"):
            refuse("run_lock needs owner and state_dir (as given to prisma_run_lock).")
        problem = renew(lock["state_dir"], lock["owner"])
        if problem:
            refuse(problem + ".")
    if expected is None and not p["blockers"]:
        return
    conn = target_connection(p["database_url"], refuse, schema_dir(p, p["schema"]))
    psql = client_tools(module, p, ["psql"], refuse)["psql"]
    if expected is not None:
        _table, _managed, now = read_history(
            module, psql, conn, local_migrations(migrations_dir), refuse, app="prisma-deploy-check"
        )
        if now["pending_checksums"] != expected:
            changed = sorted(
                n for n in set(now["pending_checksums"]) & set(expected) if now["pending_checksums"][n] != expected[n]
            )
            refuse(
                f"The pending migrations changed since the gate (now {', '.join(now['pending']) or 'none'};"
                f" confirmed {', '.join(sorted(expected)) or 'none'}"
                + (f"; edited since: {', '.join(changed)}" if changed else "")
                + "): the checkout or the database moved during the run. Run again to see and confirm the new plan."
            )
    if p["blockers"]:
        b = p["blockers"]
        conn = {**conn, "libpq_env": {**conn["libpq_env"], "PGAPPNAME": "prisma-lock-check"}}
        found = wait_for_blockers(
            lambda sql: psql_json(module, psql, conn, sql, refuse),
            list(b.get("relations") or []),
            float(b.get("max_transaction_age", 60)),
            float(b.get("max_replica_lag", 30)),
            float(b.get("wait", 0)),
            min_lock_age=float(b.get("min_lock_age", 1.0)),
        )
        result["blocker_checks"].append({"blockers": found["lines"], "waited_s": found["waited_s"]})
        if found["lines"]:
            waited = f" (waited {found['waited_s']:g} s)" if found["waited_s"] else ""
            refuse(
                f"{len(found['lines'])} session(s) would queue the application behind the migration{waited}: "
                + " | ".join(found["lines"])
                + ". Let them finish (or end them yourself), or give -e wait_for_blockers=SECONDS."
            )


class _Unreadable(Exception):
    pass


def database_after(module, p, migrations_dir, secret):
    """What ``_prisma_migrations`` shows after a deploy that did not succeed: whether this deploy may
    have changed the database, decided from the database rather than from Prisma's wording. Statements
    of one migration may commit separately (adapter-pg, Prisma >= 7.4), so a failed migration is never
    assumed to have left nothing behind."""

    def unreadable(msg):
        raise _Unreadable(msg)

    found = {"read": False, "error": None, "applied": [], "failed": [], "in_progress": [], "newly_applied": None}
    try:
        conn = target_connection(p["database_url"], unreadable, schema_dir(p, p["schema"]))
        psql = client_tools(module, p, ["psql"], unreadable)["psql"]
        _table, _managed, now = read_history(
            module, psql, conn, local_migrations(migrations_dir), unreadable, app="prisma-deploy-after"
        )
    except _Unreadable as exc:
        found["error"] = redact(str(exc), secret)
        return found, None
    found.update(read=True, applied=now["applied"], failed=now["failed"], in_progress=now["in_progress"])
    if p["expect_pending"] is not None:
        found["newly_applied"] = [n for n in sorted(p["expect_pending"]) if n in now["applied"]]
    if found["failed"] or found["in_progress"] or found["newly_applied"]:
        return found, True
    return found, (False if found["newly_applied"] is not None else None)


def run(module, p, sub, env, secret, url=None, args=None):
    """Run one subcommand (generate under the checkout lock), or ``args`` (``migrate resolve``). Returns its
    result fields (command_rc, stdout, stderr, cmd, duration_s, lock_wait_s) and its raw output. ``url`` is
    the URL Prisma gets (the deploy's carries its session settings), ``p["database_url"]`` by default."""
    args = (args or ARGS[sub]) + (["--schema", p["schema"]] if p["schema"] else [])
    waited = time.monotonic()
    with checkout_lock(p["project_dir"], sub == "generate", p["timeout"]):
        start = time.monotonic()
        rc, out, err, argv = run_prisma(
            module,
            command=p["command"],
            args=args,
            project_dir=p["project_dir"],
            environment=env,
            database_url=url or p["database_url"],
            timeout=p["timeout"],
        )
    fields = {
        "command_rc": rc,
        "stdout": redact(out, secret),
        "stderr": redact(err, secret),
        "cmd": argv,
        "duration_s": round(time.monotonic() - start, 3),
        "lock_wait_s": round(start - waited, 3),
    }
    return fields, out, err


def outcome(p, sub, fields):
    """The failure message of a finished generate or validate, or None."""
    label = "prisma " + " ".join(ARGS[sub])
    rc = fields["command_rc"]
    if rc == RC_TIMEOUT and p["timeout"]:
        return f"{label} did not finish within {p['timeout']} s and was stopped"
    if rc != 0:
        return f"{label} failed (exit {rc}): {first_error_line(fields['stdout'], fields['stderr'], rc)}"
    return None


LOCK_TIMEOUT_SQLSTATE = "55P03"  # lock_not_available: lock_timeout fired (or NOWAIT)


def parse_deploy(p, fields, out, err, secret):
    deploy = parse_migrate_deploy(out + "\n" + err, fields["command_rc"])
    for key in ("error_message", "summary", "database_error"):
        if deploy.get(key):
            deploy[key] = redact(deploy[key], secret)
    return deploy


# PostgreSQL's own texts for SQLSTATE 55P03 (lock_timeout; NOWAIT), for engines that drop the code:
# Prisma's WebAssembly engine over adapter-pg reports "external connector error" and the driver's message.
LOCK_TIMEOUT_TEXT = re.compile(r"canceling statement due to lock timeout|could not obtain lock on")


def lock_timed_out(deploy: dict) -> bool:
    """The failed migration gave up waiting for a lock: SQLSTATE 55P03 (the native engine's "Database
    error code"), or PostgreSQL's message for it where the engine dropped the code."""
    if deploy.get("database_error_code"):
        return deploy["database_error_code"] == LOCK_TIMEOUT_SQLSTATE
    return bool(
        LOCK_TIMEOUT_TEXT.search(" ".join(str(deploy.get(k) or "") for k in ("database_error", "error_message")))
    )


def retryable(p, deploy, after) -> str | None:
    """Why this failed deploy may be retried, or None: the failed migration gave up waiting for a lock
    (SQLSTATE 55P03), it is one the plan proved leaves nothing behind when it fails (``retry_safe``),
    and the history shows it failed and nothing else unfinished."""
    name = deploy.get("failed_migration")
    if not lock_timed_out(deploy) or not name or name not in p["retry_safe"]:
        return None
    if not after.get("read") or after.get("failed") != [name] or after.get("in_progress"):
        return None
    return name


def start_sampler(module, p, result):
    """The lock sampler beside the deploy (``lock_sample_interval`` > 0), or None. Its failure to start
    is recorded, never fatal: it only measures."""
    if not p["lock_sample_interval"]:
        return None

    def unusable(msg):
        raise _Unreadable(msg)

    try:
        conn = target_connection(p["database_url"], unusable, schema_dir(p, p["schema"]))
        psql = client_tools(module, p, ["psql"], unusable)["psql"]
        env = psql_env(conn, app="prisma-lock-sampler")
        env["PGAPPNAME"] = "prisma-lock-sampler"
        return LockSampler(psql, env, result["application_name"], p["lock_sample_interval"]).start()
    except (_Unreadable, OSError) as exc:
        result["locks_observed"] = {"error": f"the lock sampler did not start: {exc}"}
        return None


def deploy_with_retries(module, p, migrations_dir, env, secret, deploy_url, fail, result):
    """Last checks, then ``migrate deploy``; after a lock timeout of a retry-safe migration, ``migrate resolve
    --rolled-back`` it and try again (up to ``lock_retries`` times, backoff with jitter, the last checks and
    the blocker check again before each try). Ends the module."""
    label = "prisma migrate deploy"
    attempts = []
    result["attempts"] = attempts
    expected = p["expect_pending"]
    sampler = start_sampler(module, p, result)
    plain_fail = fail

    def fail(msg):  # noqa: F811 - the same, with the sampler's measurements in the result
        if sampler is not None:
            result["locks_observed"] = sampler.stop()
        plain_fail(msg)

    for attempt in range(p["lock_retries"] + 1):
        last_checks(module, p, migrations_dir, fail, result, expected)
        fields, out, err = run(module, p, "migrate_deploy", env, secret, url=deploy_url)
        result.update(fields)
        if fields["command_rc"] == RC_TIMEOUT and p["timeout"]:
            result["changed"] = True
            fail(outcome(p, "migrate_deploy", fields))
        deploy = parse_deploy(p, fields, out, err, secret)
        previous = result.get("deploy") or {}
        deploy["applied"] = list(previous.get("applied") or []) + [
            n for n in deploy["applied"] if n not in (previous.get("applied") or [])
        ]
        result["deploy"] = deploy
        result["changed"] = result["changed"] or bool(deploy["applied"]) or deploy["result"] == "failed"
        attempts.append({"attempt": attempt + 1, "result": deploy["result"], "failed_migration": deploy.get("failed_migration"),
                         "database_error_code": deploy.get("database_error_code"), "lock_timeout": lock_timed_out(deploy),
                         "duration_s": fields["duration_s"]})  # fmt: skip
        if deploy["database_created"]:
            fail(
                f"{label} CREATED database {deploy['database']}: the URL points at a database that did not exist"
                " - check the database name in DATABASE_URL; drop the new empty database once understood"
            )
        if fields["command_rc"] == 0 and deploy["result"] not in ("failed", "error"):
            tries = f" (attempt {attempt + 1} of {p['lock_retries'] + 1})" if attempt else ""
            if sampler is not None:
                result["locks_observed"] = sampler.stop()
            module.exit_json(msg=f"{label}: {deploy['summary']} in {result['duration_s']} s{tries}", **result)
        deploy["database_after"], deploy["database_changed"] = database_after(module, p, migrations_dir, secret)
        result["changed"] = result["changed"] or bool(deploy["database_changed"])
        name = retryable(p, deploy, deploy["database_after"]) if attempt < p["lock_retries"] else None
        if not name:
            break
        resolved, r_out, r_err = run(
            module, p, "migrate_deploy", env, secret, args=["migrate", "resolve", "--rolled-back", name]
        )
        attempts[-1]["resolved_rolled_back"] = resolved["command_rc"] == 0
        if resolved["command_rc"] != 0:
            fail(f"{label} failed: {deploy['summary']}; marking {name} rolled back to retry failed too:"
                 f" {first_error_line(resolved['stdout'], resolved['stderr'], resolved['command_rc'])}")  # fmt: skip
        now_applied = set(deploy["database_after"].get("applied") or [])
        if expected is not None:
            expected = {n: c for n, c in expected.items() if n not in now_applied}
        pause = p["retry_backoff"] * 2**attempt + random.uniform(0, p["retry_backoff"])  # noqa: S311 (jitter)
        attempts[-1]["pause_s"] = round(pause, 1)
        time.sleep(pause)
    tries = f" after {len(attempts)} attempts" if len(attempts) > 1 else ""
    fail(f"{label} failed{tries}: {deploy['summary']}")


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "project_dir": {"type": "path", "required": True},
            "subcommand": {"type": "str", "required": True, "choices": list(ARGS)},
            "command": {"type": "str", "default": "prisma"},
            "schema": {"type": "path"},
            "environment": {"type": "dict", "default": {}},
            "lock_timeout": {"type": "str", "default": ""},
            "statement_timeout": {"type": "str", "default": ""},
            "generate_first": {"type": "bool", "default": False},
            "expect_pending": {"type": "dict"},
            "run_lock": {"type": "dict"},
            "psql": {"type": "str", "default": "psql"},
            "timeout": {"type": "int", "default": 3600},
            "application_name": {"type": "str", "default": "prisma-migrate-deploy"},
            "blockers": {"type": "dict"},
            "lock_retries": {"type": "int", "default": 0},
            "retry_safe": {"type": "list", "elements": "str", "default": []},
            "retry_backoff": {"type": "float", "default": 2.0},
            "lock_sample_interval": {"type": "float", "default": 0.05},
        },
        supports_check_mode=True,
    )
    p = module.params
    env_secret_values = env_secrets(p["environment"])  # a DIRECT_URL, a shadow URL, a token ...
    hide_from_result(module, env_secret_values)
    sub = p["subcommand"]
    label = "prisma " + " ".join(ARGS[sub])
    result = {"changed": False, "command_rc": None, "stdout": "", "stderr": "", "duration_s": 0.0, "cmd": []}
    result.update(lock_wait_s=None, generate={}, attempts=[], blocker_checks=[], application_name=None)
    result["locks_observed"] = None
    result["deploy"] = {}  # the parsed deploy once Prisma ran it; empty until then: nothing was migrated

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"], *env_secret_values), **result)

    if module.check_mode and sub != "validate":
        if p["generate_first"]:
            result["generate"] = {"command_rc": None, "duration_s": 0.0, "msg": "check mode: prisma generate not run"}
        module.exit_json(skipped=True, msg=f"check mode: {label} not run", **result)
    refuse_url_in_environment(p["environment"], "environment", fail)
    secret = require_database_url(p, fail)

    env = dict(p["environment"] or {})
    settings = {"lock_timeout": p["lock_timeout"], "statement_timeout": p["statement_timeout"]}
    try:
        # the settings reach the migration's session in the URL's options (the native engine reads no
        # PGOPTIONS) and in PGOPTIONS (libpq and node-postgres apps that build their own connection)
        deploy_url, app = session_url(secret, settings, p["application_name"])
    except ValueError as exc:
        fail(str(exc))
    if target_connection(secret, fail).get("pgbouncer"):
        deploy_url = (
            secret  # a pooler may refuse startup options: the role's settings carry them (the preflight checks)
        )
    options = [f"-c {k}={v.replace(' ', '')}" for k, v in settings.items() if v]
    if options:
        env["PGOPTIONS"] = " ".join(filter(None, [env.get("PGOPTIONS", ""), *options]))
    result["application_name"] = app

    if p["generate_first"] and sub != "migrate_deploy":
        fail(f"generate_first goes with subcommand migrate_deploy, not {sub}")
    if p["lock_retries"] < 0:
        fail(f"lock_retries must be 0 or more, not {p['lock_retries']}")
    try:
        migrations_dir = check_project(p["project_dir"], p["schema"])
        if p["generate_first"]:
            generated, _out, _err = run(module, p, "generate", env, secret)
            problem = outcome(p, "generate", generated)
            generated["msg"] = problem or f"prisma generate succeeded in {generated['duration_s']} s"
            result["generate"] = generated
            result["changed"] = True  # generate rewrites the client, even when it then fails
            if problem:
                result["deploy"] = {}  # it never started
                fail(f"{problem}. Nothing was migrated.")
        if sub == "migrate_deploy":
            deploy_with_retries(module, p, migrations_dir, env, secret, deploy_url, fail, result)
        fields, out, err = run(module, p, sub, env, secret)
    except PrismaCliError as exc:  # always before Prisma starts the deploy
        if sub == "migrate_deploy":
            result["deploy"] = {}
            fail(str(exc).rstrip(".") + ". Nothing was migrated.")
        fail(str(exc))
    result.update(fields)
    result["changed"] = sub == "generate" or result["changed"]

    problem = outcome(p, sub, fields)
    if problem:
        fail(problem)
    module.exit_json(msg=f"{label} succeeded in {result['duration_s']} s", **result)


if __name__ == "__main__":
    main()
