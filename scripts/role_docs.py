"""Keep each role's README variable table and defaults in step with its
meta/argument_specs.yml (the spec is the source of truth, and the role's whole
interface).

  python scripts/role_docs.py          rewrite the tables in roles/*/README.md
  python scripts/role_docs.py --check  fail if a table is stale or defaults and spec drift apart

Drift, for every option of every entry point: a required option has no default
(neither in the spec nor in defaults/main.yml); any other option has one, the
same value in both, of the spec's type; an option shared by entry points is
specified the same way in each; a default is a literal, never a template (a
role reads no other role's result and no public input: the playbook passes
them at the import).
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


TYPES = {"str": (str,), "int": (int,), "float": (float, int), "bool": (bool,), "dict": (dict,), "list": (list,)}
MISSING = object()


def drift(role: str, spec: dict, defaults: dict) -> list[str]:
    problems = []
    options: dict[str, dict] = {}
    for entry_point, data in spec["argument_specs"].items():
        for name, opt in (data.get("options") or {}).items():
            if name in options and options[name] != opt:
                problems.append(f"{role}: option {name} differs between entry points ({entry_point})")
            options.setdefault(name, opt)
    optional = {name for name, opt in options.items() if not opt.get("required")}
    for name in sorted(set(defaults) - optional):
        what = "a required option" if name in options else "without a spec entry"
        problems.append(f"{role}: defaults/main.yml sets {name}, {what}")
    for name, opt in sorted(options.items()):
        kind = opt.get("type", "str")
        if opt.get("required"):
            if "default" in opt:
                problems.append(f"{role}: {name} is required and has a default in the spec")
            continue
        value = defaults.get(name, MISSING)
        if value is MISSING:
            problems.append(f"{role}: {name} has no default in defaults/main.yml (or mark it required)")
            continue
        if value != opt.get("default") or type(value) is not type(opt.get("default")):
            problems.append(f"{role}: {name} defaults to {value!r} but the spec says {opt.get('default')!r}")
        if isinstance(value, str) and "{{" in value:
            problems.append(f"{role}: {name} defaults to a template; pass the value from the playbook instead")
        if value is not None and not (
            isinstance(value, TYPES.get(kind, (object,))) and not (kind != "bool" and isinstance(value, bool))
        ):
            problems.append(f"{role}: {name} defaults to {value!r}, not of type {kind}")
    return problems


def main() -> int:
    check = "--check" in sys.argv
    problems = []
    for role in sorted(p for p in (ROOT / "roles").iterdir() if p.is_dir()):
        spec_file = role / "meta" / "argument_specs.yml"
        if not spec_file.exists():
            problems.append(f"{role.name}: no meta/argument_specs.yml")
            continue
        spec = yaml.safe_load(spec_file.read_text())
        defaults_file = role / "defaults" / "main.yml"
        defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
        problems.extend(drift(role.name, spec, defaults))
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
