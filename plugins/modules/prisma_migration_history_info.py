#!/usr/bin/python
"""Ansible module: prisma_migration_history_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_migration_history_info
short_description: Audit the C(_prisma_migrations) table against the local migration files
description:
  - Reads the C(_prisma_migrations) table with C(psql) and compares it with the local
    C(prisma/migrations/*/migration.sql) files.
  - Finds what C(prisma migrate status) does not report, because Prisma says "Database schema is
    up to date!" for both - an applied migration whose file was edited since (its SHA-256 no longer
    matches the recorded C(checksum)), and a migration applied in the database but missing locally.
  - Also reports failed, rolled-back and unfinished migrations, and what is pending.
  - The URL's C(schema) parameter qualifies the table (see I(database_url)).
  - The same audit as M(prisma_database_info)'s I(history) (one function, C(prisma_history.audit_history)).
  - Read-only, so C(changed) is always false and the module runs in check mode.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  project_dir:
    description:
      - The application checkout. Its C(prisma/migrations) folder is read unless I(migrations_dir) is given.
    type: path
    required: true
  migrations_dir:
    description:
      - The folder of migration folders, when it is not C(prisma/migrations) under I(project_dir).
    type: path
  allow_unmanaged:
    description:
      - When the table C(_prisma_migrations) does not exist, return every local migration as pending
        with I(managed=false) instead of failing. For a database that has never been migrated.
    type: bool
    default: false
  psql:
    description:
      - The C(psql) client to run.
    type: str
    default: psql
  connect_timeout:
    description:
      - Seconds to wait for the connection (libpq C(connect_timeout)), unless the URL sets one.
    type: int
    default: 10
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
requirements:
  - C(psql) (PostgreSQL client) on the host the module runs on.
seealso:
  - module: prisma_migrate_info
"""

EXAMPLES = r"""
- name: Audit the migration history against the checkout
  prisma_migration_history_info:
    project_dir: /srv/app
    database_url: "{{ database_url }}"
  register: __history

- name: Stop when the history has been tampered with
  ansible.builtin.assert:
    that: __history.ok
    fail_msg: "{{ __history.problems | join('; ') }}"
"""

RETURN = r"""
ok:
  description: True when nothing is failed, in progress, edited after apply or missing locally.
  returned: always
  type: bool
  sample: true
managed:
  description: Whether the table C(_prisma_migrations) exists.
  returned: always
  type: bool
  sample: true
applied:
  description: Migrations applied (finished and not rolled back).
  returned: always
  type: list
  elements: str
  sample: ["20240105090000_init"]
pending:
  description: Local migrations not applied yet (failed or unfinished ones are not counted here).
  returned: always
  type: list
  elements: str
  sample: []
pending_checksums:
  description:
    - The SHA-256 of each pending C(migration.sql), as Prisma will record it. Given back to
      M(prisma_command) as I(expect_pending), the deploy refuses if the migrations changed since.
  returned: always
  type: dict
  sample: {"20240210090000_add_order_item_foreign_keys": "9f2c..."}
failed_migrations:
  description:
    - Migrations whose last attempt failed (no finish, no roll-back, error logged).
    - Named C(failed) in the audit; a module cannot return that key, which Ansible reads as the task's own failure.
  returned: always
  type: list
  elements: str
  sample: []
rolled_back:
  description: Migrations marked as rolled back and not applied since.
  returned: always
  type: list
  elements: str
  sample: []
in_progress:
  description: Migrations started and never finished, with no error logged.
  returned: always
  type: list
  elements: str
  sample: []
checksum_mismatch:
  description: Applied migrations whose local C(migration.sql) was edited after they were applied.
  returned: always
  type: list
  elements: str
  sample: ["20240201090000_add_product_name_index"]
missing_locally:
  description: Migrations applied in the database but absent from the local folder.
  returned: always
  type: list
  elements: str
  sample: []
local:
  description: Every local migration folder holding a C(migration.sql).
  returned: always
  type: list
  elements: str
problems:
  description: One line per problem, each saying what to do.
  returned: always
  type: list
  elements: str
database:
  description: The database name from the URL (null when the URL could not be read).
  returned: always
  type: str
  sample: app
table:
  description: The table read, schema-qualified (null until it was read).
  returned: always
  type: str
  sample: '"public"."_prisma_migrations"'
pending_sql:
  description:
    - The pending migrations in order, each C(name), C(file) (relative to I(project_dir)) and C(sql), the text
      of its C(migration.sql). The controller reads it with PostgreSQL's parser (M(prisma_migration_plan));
      this host needs nothing for that.
  returned: always
  type: list
  elements: dict
  sample: [{"name": "20240301_drop", "file": "prisma/migrations/20240301_drop/migration.sql",
            "sql": "ALTER TABLE \"products\" DROP COLUMN \"legacy\";\n"}]
squawk_config:
  description: The text of the app's own C(.squawk.toml) in I(project_dir) (squawk's settings), null when absent.
  returned: always
  type: str
dropped_url_parameters:
  description: URL query parameters not passed to libpq (Prisma-only or unknown).
  returned: always
  type: list
  elements: str
  sample: ["schema"]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_connection import connect, connection_argument_spec
from ansible.module_utils.prisma_history import audit_history
from ansible.module_utils.prisma_pg import client_tools
from ansible.module_utils.prisma_url import redact


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "project_dir": {"type": "path", "required": True},
            "migrations_dir": {"type": "path"},
            "allow_unmanaged": {"type": "bool", "default": False},
            "psql": {"type": "str", "default": "psql"},
            "connect_timeout": {"type": "int", "default": 10},
        },
        supports_check_mode=True,
    )
    p = module.params
    result = {
        "changed": False,
        "ok": False,
        "managed": False,
        "applied": [],
        "pending": [],
        "pending_checksums": {},
        "failed_migrations": [],
        "rolled_back": [],
        "in_progress": [],
        "checksum_mismatch": [],
        "missing_locally": [],
        "local": [],
        "problems": [],
        "pending_sql": [],
        "squawk_config": None,
        "database": None,
        "table": None,
        "dropped_url_parameters": [],
    }

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"]), **result)

    if not os.path.isdir(p["project_dir"]):
        fail(f"project_dir {p['project_dir']} does not exist on this host: set prisma_project_dir to the app checkout")
    migrations_dir = p["migrations_dir"] or os.path.join(p["project_dir"], "prisma", "migrations")
    if not os.path.isdir(migrations_dir):
        fail(f"no migrations folder at {migrations_dir}: is {p['project_dir']} the app checkout?")
    conn = connect(p, fail)
    psql = client_tools(module, p, ["psql"], fail)["psql"]

    result["database"] = conn["database"]
    result["dropped_url_parameters"] = conn["dropped"]
    table, managed, facts = audit_history(
        module, psql, conn, p["project_dir"], migrations_dir, fail, p["connect_timeout"],
        app="prisma_migration_history_info",
    )  # fmt: skip
    result["table"] = table
    if not managed and not p["allow_unmanaged"]:
        fail(
            f"database {conn['database']} has no table {table}: it is not managed by Prisma Migrate"
            " - check the URL's database and schema, or set allow_unmanaged for a first deploy"
        )
    result["managed"] = managed
    result.update(facts)
    if not managed:
        msg = f"{table} does not exist yet: {len(result['pending'])} local migration(s) pending"
    elif result["ok"]:
        msg = f"history consistent: {len(result['applied'])} applied, {len(result['pending'])} pending"
    else:
        msg = "; ".join(result["problems"])
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
