"""Keep each role's README variable table and defaults in step with its
meta/argument_specs.yml (the spec is the source of truth).

  python scripts/role_docs.py          rewrite the tables in roles/*/README.md
  python scripts/role_docs.py --check  fail if a table is stale or defaults and spec drift apart
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
BEGIN = "<!-- BEGIN VARIABLES (generated from meta/argument_specs.yml by scripts/role_docs.py) -->"
END = "<!-- END VARIABLES -->"


def table(spec: dict) -> str:
    rows = ["| variable | type | default | description |", "|---|---|---|---|"]
    for entry_point, data in spec["argument_specs"].items():
        for name, opt in (data.get("options") or {}).items():
            if entry_point != "main" and name in (spec["argument_specs"]["main"].get("options") or {}):
                continue
            default = "(secret)" if opt.get("no_log") else ("required" if opt.get("required") else opt.get("default"))
            default = f"`{default}`" if default not in (None, "(secret)", "required") else (default or "")
            desc = opt.get("description", "")
            desc = " ".join(desc) if isinstance(desc, list) else desc
            desc = re.sub(r"[CIM]\(([^)]*)\)", r"`\1`", desc)
            rows.append(f"| `{name}` | {opt.get('type', 'str')} | {default} | {desc.replace('|', '/')} |")
    return "\n".join(rows)


def main() -> int:
    check = "--check" in sys.argv
    problems = []
    for role in sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()):
        spec_file = role / "meta" / "argument_specs.yml"
        if not spec_file.exists():
            problems.append(f"{role.name}: no meta/argument_specs.yml")
            continue
        spec = yaml.safe_load(spec_file.read_text())
        options = set(spec["argument_specs"]["main"].get("options") or {})
        defaults_file = role / "defaults" / "main.yml"
        defaults = set(yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else set()
        if defaults - options:
            problems.append(f"{role.name}: defaults without a spec entry: {sorted(defaults - options)}")
        if options - defaults:
            problems.append(f"{role.name}: spec options without a default: {sorted(options - defaults)}")
        readme = role / "README.md"
        text = readme.read_text() if readme.exists() else ""
        if BEGIN not in text or END not in text:
            problems.append(f"{role.name}: README.md lacks the generated variables section")
            continue
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        new = f"{head}{BEGIN}\n{table(spec)}\n{END}{tail}"
        if new != text:
            if check:
                problems.append(f"{role.name}: README.md variable table is stale (run: python scripts/role_docs.py)")
            else:
                readme.write_text(new)
    for problem in problems:
        print(f"role_docs: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
