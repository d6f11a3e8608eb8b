#!/usr/bin/python
"""Ansible module: prisma_snapshot_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_snapshot_info
short_description: Choose a snapshot for a database and prove it is intact before a restore
description:
  - Chooses the snapshot to restore - a given path, or C(latest), the newest pre-migration snapshot
    of the target database schema (host, port, database and schema; a manifest without a schema is
    read as C(public)) in I(backup_dir) (safety snapshots taken before a restore are skipped).
  - Refuses, with one line saying why, a snapshot without a readable manifest, a snapshot of another
    database (unless I(allow_other_database)), one whose SHA-256 no longer matches its manifest, and
    one C(pg_restore --list) cannot read.
  - A restore point's record (C(.restore_point), I(backup_method=restore_point)) is verified by its SHA-256 only -
    its WAL and base backup are checked by M(prisma_pgbackrest) - and is refused with I(allow_other_database) (a
    point-in-time restore rewinds its own cluster; C(latest) skips it there).
  - Read-only; C(changed) is always false.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  backup_dir:
    description: The snapshot folder on this host.
    type: path
    required: true
  snapshot:
    description: A snapshot path, or C(latest).
    type: str
    default: latest
  allow_other_database:
    description: Accept a snapshot of another database (a rehearsal restores production's into staging).
    type: bool
    default: false
  exclude_target:
    description: With C(latest), skip snapshots of the target database itself (a rehearsal wants production's).
    type: bool
    default: false
  pg_restore:
    description: The C(pg_restore) client.
    type: str
    default: pg_restore
attributes:
  check_mode:
    support: full
    description: Read-only.
  diff_mode:
    support: none
seealso:
  - module: prisma_snapshot
  - module: prisma_restore
"""

EXAMPLES = r"""
- name: Choose and verify the newest snapshot
  prisma_snapshot_info:
    database_url: "{{ database_url }}"
    backup_dir: /var/backups/prisma
  register: __chosen
"""

RETURN = r"""
path:
  description: The snapshot chosen; null until one was chosen.
  returned: always
  type: str
manifest_path:
  description: Its manifest; null until one was chosen.
  returned: always
  type: str
manifest:
  description:
    - The manifest's content (database, started_at, size_bytes, sha256, applied_migrations, tables ...); empty
      until it was read.
  returned: always
  type: dict
toc_entries:
  description: Entries C(pg_restore --list) read; null until it read them.
  returned: always
  type: int
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_pg import client_tools
from ansible.module_utils.prisma_snapshots import MANIFEST_SUFFIX, manifests, read_manifest, same_target, sha256_of
from ansible.module_utils.prisma_url import redact


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "backup_dir": {"type": "path", "required": True},
            "snapshot": {"type": "str", "default": "latest"},
            "allow_other_database": {"type": "bool", "default": False},
            "exclude_target": {"type": "bool", "default": False},
            "pg_restore": {"type": "str", "default": "pg_restore"},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {"changed": False, "path": None, "manifest_path": None, "manifest": {}, "toc_entries": None}

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]) + " Nothing was changed.", **result)

    conn = connect(p, fail)

    if p["snapshot"] == "latest":
        candidates = [
            (path, data)
            for path, data in manifests(p["backup_dir"])
            if data.get("purpose", "pre_migration") != "safety"
            and not (p["allow_other_database"] and data.get("method") == "restore_point")
            and (p["allow_other_database"] or same_target(data, conn))
            and not (p["exclude_target"] and same_target(data, conn))
        ]
        if not candidates:
            fail(
                f"no snapshot of database {conn['database']} (schema {conn['schema']}) on {conn['host']}:{conn['port']}"
                f" in {p['backup_dir']}:"
                " give one with -e snapshot=PATH"
            )
        manifest_path, manifest = candidates[0]
        path = os.path.join(p["backup_dir"], manifest["file"])
    else:
        path = os.path.abspath(p["snapshot"].rstrip("/"))
        manifest_path = path + MANIFEST_SUFFIX
        manifest = read_manifest(manifest_path)
        if manifest is None:
            fail(
                f"snapshot {path} has no readable manifest {manifest_path}: only snapshots taken by this project can be restored"
            )
    result.update(path=path, manifest_path=manifest_path, manifest=manifest)
    point = manifest.get("method") == "restore_point"
    if point and p["allow_other_database"]:
        fail(
            f"{path} is restore point {manifest.get('restore_point')}: a restore point rewinds its own cluster and"
            " cannot be restored into another database - rehearse from a pg_dump snapshot"
        )
    if not os.path.exists(path):
        fail(f"snapshot {path} is missing (its manifest {manifest_path} is there)")
    if not p["allow_other_database"] and not same_target(manifest, conn):
        fail(
            f"snapshot {path} is of database {manifest.get('database')} (schema {manifest.get('schema') or 'public'}) on"
            f" {manifest.get('host')}:{manifest.get('port')}, not of the target {conn['database']} (schema"
            f" {conn['schema']}) on {conn['host']}:{conn['port']}: refusing to restore it here"
        )
    checksum = sha256_of(path)
    if checksum != manifest.get("sha256"):
        fail(f"snapshot {path} is damaged: its SHA-256 is {checksum}, the manifest recorded {manifest.get('sha256')}")
    if point:  # its record is verified; pgBackRest checks the point's WAL and backup (prisma_pgbackrest)
        module.exit_json(
            msg=f"restore point {manifest.get('restore_point')} of {manifest.get('database')} made {manifest.get('started_at')}",
            **result,
        )
    pg_restore = client_tools(module, p, ["pg_restore"], fail)["pg_restore"]
    rc, toc, err = module.run_command([pg_restore, "--list", path], check_rc=False)
    entries = [ln for ln in toc.splitlines() if ln.strip() and not ln.startswith(";")]
    if rc != 0 or not entries:
        fail(f"pg_restore --list cannot read snapshot {path}: {(err or 'empty table of contents').strip()[:200]}")
    result["toc_entries"] = len(entries)
    module.exit_json(
        msg=f"snapshot {path} of {manifest.get('database')} taken {manifest.get('started_at')} verified", **result
    )


if __name__ == "__main__":
    main()
