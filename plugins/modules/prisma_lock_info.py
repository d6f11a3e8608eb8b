#!/usr/bin/python
"""Ansible module: prisma_lock_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_lock_info
short_description: Read what would queue the application behind a migration, and what bounds its lock waits
description:
  - Reads, in one query, the sessions a migration of I(relations) would wait behind, so that the
    application would queue behind the migration - sessions holding or waiting for a lock on one of
    I(relations) in a transaction open at least I(min_lock_age) seconds (younger ones are the application's
    ordinary traffic, whose wait C(lock_timeout) bounds); transactions open longer than I(max_transaction_age) seconds and sessions idle in a
    transaction, in this database; an anti-wraparound autovacuum on one of I(relations) - and the
    standbys whose replay lags more than I(max_replica_lag) seconds. Each comes back as one line
    (C(blockers)) - pid, application_name, client address, state, age, locks, and the first 80
    characters of its query with the literals removed.
  - With I(wait), reads again every second while there are blockers, for up to I(wait) seconds.
  - Reads which mechanism brings I(lock_timeout) and I(statement_timeout) to the migration's session
    (C(timeouts.mechanism)) - C(url_options) (a session opened with the URL's C(options) parameter, as
    the deploy opens it, shows the server applied them; Prisma's native engine and node-postgres send
    it), C(role_setting) (the URL's role has C(lock_timeout) in C(pg_db_role_setting), which reaches
    any engine and any pooler; required with I(migration_role)), or C(none).
  - Terminates nothing; changes nothing; C(changed) is always false.
version_added: "1.3.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  project_dir:
    description: The application checkout; a relative C(sslcert) in the URL is read from its schema's folder (see I(schema_dir)).
    type: path
  relations:
    description: The schema-qualified relations the pending SQL touches (the migration plan's C(relations)).
    type: list
    elements: str
    default: []
  max_transaction_age:
    description: A transaction open longer than this many seconds is a blocker.
    type: float
    default: 60
  max_replica_lag:
    description: A standby replaying more than this many seconds behind is a blocker.
    type: float
    default: 30
  min_lock_age:
    description:
      - A lock holder on I(relations) is a blocker when its transaction is at least this many seconds old. A session
        this role cannot see the state of (no C(pg_read_all_stats)) is a blocker when a second read this much
        later still sees it.
    type: float
    default: 1
  wait:
    description: Seconds to wait for the blockers to go (read again every second) before returning them.
    type: float
    default: 0
  lock_timeout:
    description: The C(lock_timeout) the migration's session must run with (for example C(5s)).
    type: str
    default: ""
  statement_timeout:
    description: The C(statement_timeout) the migration's session runs with; empty for none.
    type: str
    default: ""
  migration_role:
    description:
      - The dedicated migration role, set up once with C(ALTER ROLE ... SET lock_timeout). When given, the URL
        must log in as it and the role must have C(lock_timeout) set.
    type: str
    default: ""
  psql:
    description: The psql program.
    type: str
    default: psql
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
seealso:
  - module: prisma_command
"""

EXAMPLES = r"""
- name: Read the blockers of the pending SQL, waiting up to 30 s for them to go
  prisma_lock_info:
    database_url: "{{ database_url }}"
    relations: "{{ plan.relations }}"
    wait: 30
    lock_timeout: 5s
  register: __locks
"""

RETURN = r"""
blockers:
  description: One line per blocker still there at the end of the wait; empty when the way is clear.
  returned: always
  type: list
  elements: str
sessions:
  description: The blocking sessions as read (pid, application_name, user, client_addr, state, why, locks, ages).
  returned: always
  type: list
  elements: dict
replicas:
  description: Every standby of the target (pid, application_name, state, replay_lag_s, lagging).
  returned: always
  type: list
  elements: dict
sees_all:
  description:
    - Whether the role sees every session's state (superuser or C(pg_read_all_stats)). Without it, lock holders on
      I(relations) are still found, but old transactions of other roles holding no lock on them yet are not.
  returned: always
  type: bool
waited_s:
  description: Seconds spent waiting for blockers to go.
  returned: always
  type: float
timeouts:
  description:
    - C(mechanism) (C(url_options), C(role_setting) or C(none)), C(in_force) (the lock_timeout and
      statement_timeout the migration's session gets) and C(detail) (one line).
  returned: always
  type: dict
"""

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_locks import timeout_mechanism, timeouts_sql, wait_for_blockers
from ansible.module_utils.prisma_pg import client_tools, explain_psql_error, psql_json, run_psql
from ansible.module_utils.prisma_url import redact, session_url


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "project_dir": {"type": "path"},
            "relations": {"type": "list", "elements": "str", "default": []},
            "max_transaction_age": {"type": "float", "default": 60},
            "max_replica_lag": {"type": "float", "default": 30},
            "wait": {"type": "float", "default": 0},
            "min_lock_age": {"type": "float", "default": 1.0},
            "lock_timeout": {"type": "str", "default": ""},
            "statement_timeout": {"type": "str", "default": ""},
            "migration_role": {"type": "str", "default": ""},
            "psql": {"type": "str", "default": "psql"},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "blockers": [], "sessions": [], "replicas": [], "waited_s": 0.0, "timeouts": {}}
    result["sees_all"] = None

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    for name in ("max_transaction_age", "max_replica_lag", "wait", "min_lock_age"):
        if p[name] < 0:
            fail(f"{name} must be 0 or more seconds, not {p[name]:g}")
    conn = connect(p, fail)
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    conn = {**conn, "libpq_env": {**conn["libpq_env"], "PGAPPNAME": "prisma-lock-check"}}

    def query(sql):
        return psql_json(module, psql, conn, sql, fail)

    found = wait_for_blockers(
        query,
        p["relations"],
        p["max_transaction_age"],
        p["max_replica_lag"],
        p["wait"],
        min_lock_age=p["min_lock_age"],
    )
    result.update(blockers=found["lines"], sessions=found["sessions"], replicas=found["replicas"])
    result["sees_all"] = found["sees_all"]
    result["waited_s"] = found["waited_s"]

    wanted = {"lock_timeout": p["lock_timeout"], "statement_timeout": p["statement_timeout"]}
    try:
        session_url(p["database_url"], wanted)
    except ValueError as exc:
        fail(str(exc))
    plain = query(timeouts_sql())
    with_options = None
    if not conn.get("pgbouncer") and p["lock_timeout"]:
        extra = " ".join(f"-c {k}={v.replace(' ', '')}" for k, v in wanted.items() if v)
        options = " ".join(filter(None, [conn["libpq_env"].get("PGOPTIONS", ""), extra]))
        opened = {**conn, "libpq_env": {**conn["libpq_env"], "PGOPTIONS": options}}
        rc, out, err = run_psql(module, psql, opened, timeouts_sql())
        if rc == 0:
            with_options = json.loads(out.strip() or "null")
        else:
            result["timeouts_error"] = explain_psql_error(err, conn)
    result["timeouts"] = timeout_mechanism(
        with_options, plain, wanted, bool(conn.get("pgbouncer")), p["migration_role"]
    )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
