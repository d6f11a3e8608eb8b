#!/usr/bin/python
"""Ansible module: prisma_pgbackrest."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_pgbackrest
short_description: Check a pgBackRest stanza, or restore its cluster to a restore point
description:
  - Runs on the database host, where pgBackRest is configured (delegate to it; C(pgbackrest_host) in the inventory).
  - I(state=info) reads C(pgbackrest info --output=json) and fails in one line unless the stanza can restore this
    cluster - status ok, the cluster's system identifier (I(system_identifier)), a full backup the archive can replay
    from, the archive reaching I(segment) - and, with I(target_lsn), names the newest good backup that ended before
    it (C(summary.restore_set)). Changes nothing.
  - I(state=restored) stops the cluster (I(stop_command)), runs C(pgbackrest restore --delta --type=name
    --target=<restore_point> --target-timeline=<timeline> --target-action=promote --set=<backup_set>), and starts it
    (I(start_command)). Recovery replays the archive up to the point and promotes the server onto a new timeline;
    wait for it with M(prisma_archive_info) I(wait_primary). Every write to every database of the cluster after the
    point is lost. A failure says which step failed, whether the cluster is stopped, and the commands that finish the
    restore by hand.
version_added: "1.5.0"
author: Ops team
options:
  state:
    description: C(info) checks, C(restored) restores.
    type: str
    choices: [info, restored]
    default: info
  command:
    description: The pgBackRest command line before its options (for example C([sudo, -u, postgres, pgbackrest]) or with C(--config=PATH)).
    type: list
    elements: str
    default: [pgbackrest]
  stanza:
    description: The stanza of the cluster.
    type: str
    required: true
  system_identifier:
    description: The cluster's system identifier (from the server); the stanza must back up this cluster.
    type: str
  segment:
    description: A WAL segment the server reported archived; the repository must hold it.
    type: str
  target_lsn:
    description: The restore point's LSN; a backup that ended before it must exist.
    type: str
  timeline:
    description: The restore point's timeline.
    type: int
  restore_point:
    description: The restore point's name (I(state=restored)).
    type: str
  backup_set:
    description: The backup to restore from (C(summary.restore_set.label) of I(state=info)).
    type: str
  stop_command:
    description: Stops the cluster and returns when it is stopped (for example C([pg_ctlcluster, "15", main, stop])).
    type: list
    elements: str
    default: []
  start_command:
    description: Starts the cluster (for example C([pg_ctlcluster, "15", main, start])).
    type: list
    elements: str
    default: []
  timeout:
    description: Seconds each command may take.
    type: int
    default: 3600
"""

EXAMPLES = r"""
- name: Check the stanza before the gate
  prisma_pgbackrest:
    stanza: main
    system_identifier: "{{ archive.state.system_identifier }}"
    segment: "{{ archive.switched.segment }}"
  delegate_to: "{{ pgbackrest_host }}"
"""

RETURN = r"""
summary:
  description:
    - C(stanza), C(status), C(system_identifier), C(pg_version), C(archive_min), C(archive_max), C(full_backups),
      C(latest_backup) and C(restore_set) (C(label), C(type), C(stopped_at), C(lsn_stop), C(size_bytes),
      C(repository_bytes)).
  returned: always (null unless I(state=info) succeeded)
  type: dict
steps:
  description: Each step run for I(state=restored) - C(name), C(argv), C(rc), C(seconds).
  returned: always
  type: list
duration_s:
  description: Seconds from the stop to the start returning.
  returned: always (null unless I(state=restored) succeeded)
  type: float
"""

import shlex
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_archive import InfoProblem, check_stanza, restore_argv


def _first_line(text):
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no error text"


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "choices": ["info", "restored"], "default": "info"},
            "command": {"type": "list", "elements": "str", "default": ["pgbackrest"]},
            "stanza": {"type": "str", "required": True},
            "system_identifier": {"type": "str"},
            "segment": {"type": "str"},
            "target_lsn": {"type": "str"},
            "timeline": {"type": "int"},
            "restore_point": {"type": "str"},
            "backup_set": {"type": "str"},
            "stop_command": {"type": "list", "elements": "str", "default": []},
            "start_command": {"type": "list", "elements": "str", "default": []},
            "timeout": {"type": "int", "default": 3600},
        },
        required_if=[
            ("state", "restored", ("restore_point", "backup_set", "timeline", "stop_command", "start_command"))
        ],
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "steps": [], "summary": None, "duration_s": None}
    if not p["command"]:
        module.fail_json(msg="command is empty: give the pgBackRest command line, for example [pgbackrest]", **result)

    def run(name, argv):
        started = time.monotonic()
        rc, out, err = module.run_command(argv, check_rc=False)
        result["steps"].append({"name": name, "argv": argv, "rc": rc, "seconds": round(time.monotonic() - started, 2)})
        return rc, out, err

    if p["state"] == "info":
        argv = [*p["command"], f"--stanza={p['stanza']}", "--output=json", "info"]
        rc, out, err = run("info", argv)
        if rc != 0:
            module.fail_json(
                msg=f"pgbackrest info failed on this host (exit {rc}): {_first_line(err or out)}", **result
            )
        try:
            summary = check_stanza(
                out, p["stanza"], p["system_identifier"], p["segment"], p["target_lsn"], p["timeline"]
            )
        except InfoProblem as exc:
            module.fail_json(msg=str(exc), **result)
        result["summary"] = summary
        module.exit_json(**result)

    if module.check_mode:
        module.exit_json(msg="check mode: the cluster was not stopped nor restored", **result)
    restore = restore_argv(p["command"], p["stanza"], p["restore_point"], p["timeline"], p["backup_set"])
    by_hand = f"{shlex.join(restore)} && {shlex.join(p['start_command'])}"
    started = time.monotonic()
    rc, out, err = run("stop", p["stop_command"])
    if rc != 0:
        module.fail_json(
            msg=f"the cluster did not stop ({shlex.join(p['stop_command'])}, exit {rc}: {_first_line(err or out)}):"
            " nothing was restored; check whether it is still running",
            **result,
        )
    result["changed"] = True
    rc, out, err = run("restore", restore)
    if rc != 0:
        module.fail_json(
            msg=f"pgbackrest restore failed (exit {rc}: {_first_line(err or out)}): the cluster is STOPPED and its data"
            f" directory may be partly rewritten. Fix the cause, then run: {by_hand}",
            **result,
        )
    rc, out, err = run("start", p["start_command"])
    if rc != 0:
        module.fail_json(
            msg=f"the cluster was restored to {p['restore_point']} but did not start ({shlex.join(p['start_command'])},"
            f" exit {rc}: {_first_line(err or out)}): see its log, then run {shlex.join(p['start_command'])}",
            **result,
        )
    result["duration_s"] = round(time.monotonic() - started, 2)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
