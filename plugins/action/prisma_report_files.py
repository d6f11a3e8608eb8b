"""Action plugin: prisma_report_files - write a run's report files on the controller.

Reports always live on the controller, whatever the target: writing them here,
in the controller's own process, costs milliseconds, where a copy or template
task delegated to localhost starts a module process per file.
"""

from __future__ import annotations

import os
import tempfile

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

DOCUMENTATION = r"""
---
module: prisma_report_files
short_description: Write report files (JSON, Markdown) into a folder on the controller
description:
  - Creates I(dir) (mode 0700) if needed and writes each of I(files) into it atomically (a temporary
    file renamed into place), mode 0600. Runs on the controller, never on the target.
  - Reports are the run's log, not a change to the target, so the task never reports C(changed).
  - Each file ends with a newline. In check mode nothing is written.
options:
  dir:
    description: The folder on the controller.
    type: path
    required: true
  files:
    description: File name (no folder part) to content.
    type: dict
    required: true
"""


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("dir", "files"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        folder = self._task.args.get("dir")
        files = self._task.args.get("files")
        if not folder or not isinstance(files, dict) or not files:
            raise AnsibleActionFail("prisma_report_files needs dir and a non-empty files mapping (name: content)")
        for name in files:
            if not name or os.path.basename(name) != name or name in (".", ".."):
                raise AnsibleActionFail(f"prisma_report_files: {name!r} is not a plain file name")
        folder = os.path.abspath(os.path.expanduser(str(folder)))
        paths = [os.path.join(folder, name) for name in files]
        result.update(changed=False, paths=paths)
        if self._task.check_mode:
            result.update(skipped=True, msg="check mode: reports not written")
            return result
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            for path, content in zip(paths, files.values(), strict=True):
                handle, temp = tempfile.mkstemp(dir=folder, prefix=".report-")
                try:
                    with os.fdopen(handle, "w", encoding="utf-8") as out:
                        text = str(content)
                        out.write(text if text.endswith("\n") else text + "\n")
                    os.chmod(temp, 0o600)
                    os.replace(temp, path)
                except BaseException:
                    os.unlink(temp)
                    raise
        except OSError as exc:
            raise AnsibleActionFail(
                f"cannot write the report in {folder}: {exc.strerror}. Set report_dir to a folder you can write."
            ) from exc
        return result
