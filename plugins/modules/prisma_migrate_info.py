#!/usr/bin/python
"""Ansible module: prisma_migrate_info."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prisma_migrate_info
short_description: Read the migration state of a database with C(prisma migrate status)
description:
  - Runs C(<command> migrate status) in the Prisma project directory and turns what it prints
    into facts, by the parser in C(module_utils/prisma_status.py).
  - The state is one of C(up_to_date), C(pending), C(failed), C(diverged), C(not_managed) or
    C(error); output that is not recognised is C(error), never C(up_to_date).
  - Read-only, so C(changed) is always false and the module runs in check mode.
  - Prisma is blind to a migration edited after it was applied and to one applied but deleted
    locally; use M(prisma_migration_history_info) for those.
version_added: "1.0.0"
author: Ops team
extends_documentation_fragment:
  - prisma_connection
options:
  project_dir:
    description:
      - The application checkout holding C(package.json) and C(prisma/). The command runs here.
    type: path
    required: true
  command:
    description:
      - The Prisma command, as a prefix to which C(migrate status) is appended. Split like a shell
        would, but run without a shell.
      - The default C(prisma) is the checkout's own CLI, C(node_modules/.bin/prisma), which is what
        C(pnpm exec prisma) and C(npx --no-install prisma) run, without their start-up (about 0.4 s a command).
      - A bare name is looked up in C(node_modules/.bin) of I(project_dir) first, then on the C(PATH) of
        I(environment), then on the host's C(PATH); a path with a C(/) is taken relative to I(project_dir).
    type: str
    default: prisma
  schema:
    description:
      - Path to the Prisma schema, passed as C(--schema). Relative paths are relative to I(project_dir).
      - When unset, Prisma finds the schema itself and the migrations are read from C(prisma/migrations).
    type: path
  environment:
    description:
      - Variables added to the command's environment (for example the Prisma engine paths). Never
        C(DATABASE_URL) - it would be logged here; the URL is I(database_url).
    type: dict
    default: {}
  expect:
    description:
      - Fail unless the state is this one. The message lists the pending or failed migrations and
        says what to do next.
    type: str
    choices: [up_to_date, pending, failed, diverged, not_managed, error]
  validate:
    description:
      - Also run C(prisma validate), side by side with C(migrate status) (it reads only the schema, so the
        two Node start-ups overlap). An invalid schema fails the module with Prisma's first error line.
    type: bool
    default: false
  timeout:
    description:
      - Seconds after which the command is stopped and the module fails. C(0) means no limit.
    type: int
    default: 120
attributes:
  check_mode:
    support: full
    description: Read-only; runs the same in check mode.
  diff_mode:
    support: none
notes:
  - The exit code of C(prisma migrate status) is 1 for pending, failed, diverged and unreachable
    alike; the module decides from the text, not from the exit code.
seealso:
  - module: prisma_migration_history_info
  - name: prisma migrate status
    description: Prisma CLI reference.
    link: https://www.prisma.io/docs/orm/reference/prisma-cli-reference#migrate-status
"""

EXAMPLES = r"""
- name: Read the migration state
  prisma_migrate_info:
    project_dir: /srv/app
    database_url: "{{ database_url }}"
  register: __status

- name: Read the migration state and check the schema, side by side
  prisma_migrate_info:
    project_dir: /srv/app
    database_url: "{{ database_url }}"
    validate: true
  register: __status

- name: Fail unless every migration is applied
  prisma_migrate_info:
    project_dir: /srv/app
    database_url: "{{ database_url }}"
    expect: up_to_date

- name: Parse output registered by another task
  ansible.builtin.set_fact:
    status_facts: "{{ (__raw.stdout ~ __raw.stderr) | prisma_status(rc=__raw.rc) }}"
"""

RETURN = r"""
state:
  description: The migration state.
  returned: always
  type: str
  sample: pending
in_sync:
  description: Whether I(state) is C(up_to_date).
  returned: always
  type: bool
  sample: false
pending:
  description: Migrations not yet applied, in the order Prisma printed them (also those of a diverged history).
  returned: always
  type: list
  elements: str
  sample: ["20240210090000_add_order_item_foreign_keys"]
failed_migrations:
  description:
    - Failed migrations recorded in the database.
    - The parser calls this C(failed); a module cannot return that key, which Ansible reads as the task's own failure.
  returned: always
  type: list
  elements: str
  sample: []
missing_locally:
  description: Migrations applied in the database but absent from the local folder (diverged history).
  returned: always
  type: list
  elements: str
  sample: []
last_common_migration:
  description: The last migration both histories share, for a diverged history.
  returned: always
  type: str
  sample: null
local_migration_count:
  description: How many migrations Prisma found locally, or null when it did not say.
  returned: always
  type: int
  sample: 5
error_code:
  description: The Prisma error code shown, or inferred for connection failures (P1000, P1001, P1003).
  returned: always
  type: str
  sample: P1001
error_message:
  description: The first error line, or null.
  returned: always
  type: str
  sample: "Can't reach database server at `db.internal:5432`"
database:
  description: The database name from the C(Datasource) line.
  returned: always
  type: str
  sample: app
schema:
  description: The PostgreSQL schema from the C(Datasource) line.
  returned: always
  type: str
  sample: public
summary:
  description: One line for a person, saying what the state is.
  returned: always
  type: str
  sample: "1 migration(s) not yet applied: 20240210090000_add_order_item_foreign_keys"
command_rc:
  description:
    - The exit code of C(prisma migrate status) (1 for pending, failed, diverged and errors alike).
    - Not named C(rc), which Ansible would read as the task's own failure.
  returned: always
  type: int
  sample: 1
stdout:
  description: What the command printed on stdout, password removed.
  returned: always
  type: str
stderr:
  description: What the command printed on stderr, password removed.
  returned: always
  type: str
duration_s:
  description: Seconds C(prisma migrate status) took.
  returned: always
  type: float
  sample: 1.4
validation:
  description:
    - With I(validate), what C(prisma validate) did - C(command_rc), C(duration_s), C(msg), C(stdout), C(stderr),
      C(cmd) - else an empty dict.
  returned: always
  type: dict
  sample: {"command_rc": 0, "duration_s": 1.5, "msg": "prisma validate succeeded in 1.5 s"}
cmd:
  description: The command that ran (it never carries the URL).
  returned: always
  type: list
  elements: str
  sample: ["/srv/app/node_modules/.bin/prisma", "migrate", "status"]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.prisma_cli import PrismaCliError, StatusRun, check_project, hide_from_result
from ansible.module_utils.prisma_connection import (
    connection_argument_spec,
    refuse_url_in_environment,
    require_database_url,
)
from ansible.module_utils.prisma_status import NEXT_STEP, STATES, parse_migrate_status
from ansible.module_utils.prisma_url import env_secrets, redact


def main():
    module = AnsibleModule(
        argument_spec={
            **connection_argument_spec(),
            "project_dir": {"type": "path", "required": True},
            "command": {"type": "str", "default": "prisma"},
            "schema": {"type": "path"},
            "environment": {"type": "dict", "default": {}},
            "expect": {"type": "str", "choices": list(STATES)},
            "validate": {"type": "bool", "default": False},
            "timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    p = module.params
    env_secret_values = env_secrets(p["environment"])
    hide_from_result(module, env_secret_values)
    result = {"changed": False, "command_rc": None, "stdout": "", "stderr": "", "cmd": []}
    result.update(duration_s=0.0, validation={})
    result.update(parse_migrate_status("", None))
    result["failed_migrations"] = result.pop("failed")

    def fail(msg):
        module.fail_json(msg=redact(msg, p["database_url"], *env_secret_values), **result)

    refuse_url_in_environment(p["environment"], "environment", fail)
    try:
        check_project(p["project_dir"], p["schema"])
        url = require_database_url(p, fail)
        run = StatusRun(
            module,
            command=p["command"],
            project_dir=p["project_dir"],
            schema=p["schema"],
            environment=p["environment"],
            database_url=url,
            timeout=p["timeout"],
            validate=p["validate"],
        )
    except PrismaCliError as exc:
        fail(str(exc))
    facts, problem = run.collect(parse_migrate_status, lambda text: redact(text, url))
    result.update(facts)
    if problem:
        fail(problem)
    msg = f"{facts['summary']}; next: {NEXT_STEP[facts['state']]}"
    if p["expect"] and facts["state"] != p["expect"]:
        fail(f"expected migration state {p['expect']}, found {facts['state']}: {msg}")
    module.exit_json(msg=msg, **result)


if __name__ == "__main__":
    main()
