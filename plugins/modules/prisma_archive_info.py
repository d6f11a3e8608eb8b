#!/usr/bin/python
"""Ansible module: prisma_archive_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_archive_info
short_description: Prove the server's continuous WAL archiving works, for a restore point
description:
  - Reads, as the URL's role, what the server says of its archive - C(archive_mode), C(pg_stat_archiver), the
    current timeline and WAL position, the system identifier, the cluster's databases, and whether the role
    may run C(pg_create_restore_point) and C(pg_switch_wal).
  - With I(check), fails in one line when a restore point could not be trusted - a standby, C(archive_mode)
    off, the two functions not granted, the archiver failing (its last failure after its last success),
    never archiving, or its last success older than I(max_archive_age) seconds.
  - With I(switch_wal) (and I(check)), then closes the current WAL segment (C(pg_switch_wal)) and waits up to
    I(archive_timeout) seconds until the archiver reports it archived - the proof that archive_command works
    now. That writes no data; it starts a new WAL segment.
  - With I(wait_primary), first waits up to that many seconds until the server accepts connections and is out
    of recovery (after a point-in-time restore, until it has promoted).
  - Changes no data; C(changed) is always false.
version_added: "1.5.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  check:
    description: Fail when the archive cannot be trusted (see above).
    type: bool
    default: true
  switch_wal:
    description: With I(check), close the current WAL segment and wait until it is archived.
    type: bool
    default: true
  max_archive_age:
    description: The archiver's last success must be at most this many seconds old.
    type: float
    default: 300
  archive_timeout:
    description: Seconds to wait for the switched segment to be archived.
    type: float
    default: 60
  wait_primary:
    description: Seconds to wait for the server to accept connections out of recovery (0 does not wait).
    type: float
    default: 0
  psql:
    description: The psql program.
    type: str
    default: psql
"""

EXAMPLES = r"""
- name: Prove the archive before the gate
  prisma_archive_info:
    database_url: "{{ database_url }}"
    max_archive_age: 300
  register: archive
"""

RETURN = r"""
state:
  description:
    - What the server said - C(archive_mode), C(wal_level), C(in_recovery), C(user), C(system_identifier) (null without
      the right to read C(pg_control_system)), C(timeline), C(lsn), C(can_switch_wal), C(can_create_restore_point),
      C(now), C(databases) (every database of the cluster, which a point-in-time restore rewinds together) and
      C(archiver) (C(last_archived_wal), C(last_archived_at), C(age_s), C(failed_count), C(last_failed_wal),
      C(last_failed_at), C(failing)). Read after the switch when there was one.
  returned: always
  type: dict
switched:
  description: The segment switched out (C(segment)) and how long its archiving took (C(archived_in_s)); null without a switch.
  returned: always
  type: dict
waited_s:
  description: Seconds waited for the server to be a primary accepting connections (I(wait_primary)).
  returned: always
  type: float
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_archive import STATE_SQL, ArchiveProblem, state_problems, switch_and_wait
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_pg import client_tools, explain_psql_error, psql_json, run_psql
from ansible.module_utils.prisma_url import redact


def wait_for_primary(module, psql, conn, seconds):
    """Wait until a query answers that the server is out of recovery; return the seconds waited, or None."""
    started = time.monotonic()
    last = "no answer"
    while True:
        rc, out, err = run_psql(module, psql, conn, "SELECT pg_is_in_recovery()", connect_timeout=5)
        if rc == 0 and out.strip() == "f":
            return round(time.monotonic() - started, 2), last
        last = "still in recovery" if rc == 0 else explain_psql_error(err, conn)
        if time.monotonic() - started >= seconds:
            return None, last
        time.sleep(0.5)


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "check": {"type": "bool", "default": True},
            "switch_wal": {"type": "bool", "default": True},
            "max_archive_age": {"type": "float", "default": 300},
            "archive_timeout": {"type": "float", "default": 60},
            "wait_primary": {"type": "float", "default": 0},
            "psql": {"type": "str", "default": "psql"},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "state": {}, "switched": None, "waited_s": 0.0}

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    for name in ("max_archive_age", "archive_timeout", "wait_primary"):
        if p[name] < 0:
            fail(f"{name} must be 0 or more seconds, not {p[name]:g}")
    conn = connect(p, fail)
    psql = client_tools(module, p, ["psql"], fail)["psql"]
    conn = {**conn, "libpq_env": {**conn["libpq_env"], "PGAPPNAME": "prisma-archive-check"}}
    where = f"{conn['host']}:{conn['port']}"

    if p["wait_primary"] > 0:
        waited, last = wait_for_primary(module, psql, conn, p["wait_primary"])
        if waited is None:
            fail(
                f"the server on {where} did not come back as a primary within {p['wait_primary']:g} s ({last}):"
                " see its log - recovery may still be replaying WAL"
            )
        result["waited_s"] = waited

    def query(sql):
        return psql_json(module, psql, conn, sql, fail)

    result["state"] = query(STATE_SQL)
    if p["check"]:
        problems = state_problems(result["state"], p["max_archive_age"], where)
        if problems:
            fail(
                "the WAL archive cannot be trusted for a restore point: "
                + "; ".join(problems)
                + ". Nothing was changed."
            )
        if p["switch_wal"]:
            try:
                result["switched"] = switch_and_wait(query, p["archive_timeout"], where)
            except ArchiveProblem as exc:
                fail(f"the WAL archive cannot be trusted for a restore point: {exc}. Nothing was changed.")
            result["state"] = query(STATE_SQL)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
