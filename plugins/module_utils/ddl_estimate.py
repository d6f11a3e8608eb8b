"""How long a blocking migration statement holds its lock, from the live size of its tables.

Pure Python, no Ansible import: the controller's prisma_migration_plan joins the parser's reading
of each statement (sql_plan.py: its cost and the lock it takes on each relation) with the target's
live statistics (prisma_database_info's ``relations``) and a rate per kind of work.

The rates are bytes of table per second for an index build, a full rewrite and a validating scan.
They come from, in order: the inventory (``ddl_rates``), else the calibration ``make bench-ddl``
measured (``ddl_rates.json`` beside the action plugin), else DEFAULT_RATES. An estimate is a range
(RANGE around the figure): the machine, the cache and the concurrent load move it.
"""

from __future__ import annotations

import json
import os

# A conservative floor for when no calibration exists (a slow disk; measured figures are higher).
DEFAULT_RATES = {"index_build": 20_000_000, "full_rewrite": 15_000_000, "full_scan": 60_000_000}
RATE_KEYS = tuple(DEFAULT_RATES)
RANGE = (0.75, 1.5)

# What each cost of sql_plan reads or writes: the rate, and whether the indexes are rebuilt too.
_WORK = {
    "index build": ("index_build", False),
    "full rewrite": ("full_rewrite", True),
    "full scan": ("full_scan", False),
    "per-row": ("full_rewrite", False),  # every row of the table at most (a WHERE may touch fewer)
}


class RateError(ValueError):
    """The rates given are not usable: the message says which and what to do."""


def load_rates(override=None, path: str | None = None) -> tuple[dict, str]:
    """The rates and where they came from: ``override`` (the inventory), else the file at ``path``,
    else DEFAULT_RATES."""
    if override:
        if not isinstance(override, dict) or set(override) - set(RATE_KEYS):
            raise RateError(f"ddl_rates must be a mapping of {', '.join(RATE_KEYS)} to bytes per second")
        rates = dict(DEFAULT_RATES)
        for key, value in override.items():
            try:
                rates[key] = float(value)
            except (TypeError, ValueError):
                rates[key] = 0
            if rates[key] <= 0:
                raise RateError(f"ddl_rates.{key} must be a number of bytes per second above 0, not {value!r}")
        return rates, "the inventory's ddl_rates"
    if path and os.path.isfile(path):
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
        rates = {key: float(data["rates"][key]) for key in RATE_KEYS}
        return rates, f"the calibration of make bench-ddl ({data.get('measured_at', 'date unknown')})"
    return dict(DEFAULT_RATES), "the default rates (no calibration: run make bench-ddl)"


def human_rows(rows: int) -> str:
    for size, unit in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if rows >= size:
            return f"{rows / size:.1f} {unit} rows"
    return f"{int(rows)} rows"


def human_bytes(size: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def human_seconds(seconds: float) -> str:
    if seconds < 1:
        return "<1 s"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min"


def _span(low: float, high: float) -> str:
    """``<1 s``, ``3–5 s``, ``2–5 min``: one unit when both ends share it."""
    a, b = human_seconds(low), human_seconds(high)
    if a == b:
        return b
    unit_a, unit_b = a.split(" ")[-1], b.split(" ")[-1]
    return f"{a.rsplit(' ', 1)[0]}–{b}" if unit_a == unit_b and not a.startswith("<") else f"{a}–{b}"


def estimate(statement: dict, relations: dict, rates: dict, source: str) -> dict:
    """``{seconds, low, high, relation, text, source}`` for one blocking statement of the plan: how long
    it holds a lock that blocks the application. ``seconds`` is None when it cannot be known (an
    unreadable statement, an unknown cost): the gate then treats it as over any budget."""
    work = _WORK.get(statement.get("cost"))
    if statement.get("unclassified") or statement.get("cost") in (None, "unknown"):
        named = [r["relation"] for r in statement.get("relations") or []]
        text = (
            f"blocks {'the application' if not named else ', '.join(named)} for an unknown time"
            f" ({statement.get('unclassified') or 'a statement whose work cannot be estimated'})"
        )
        return {"seconds": None, "low": None, "high": None, "relation": named[0] if named else None, "text": text,
                "source": source}  # fmt: skip
    worst = None
    for rel in statement.get("relations") or []:
        if rel.get("blocks") in (None, "", "nothing"):
            continue
        live = relations.get(rel["relation"])
        if live is None or rel.get("new"):
            seconds = 0.0  # created earlier in this run (empty), or not in the database yet
        elif work is None:
            seconds = None
        else:
            kind, with_indexes = work
            size = int(live.get("table_bytes") or 0) + (int(live.get("index_bytes") or 0) if with_indexes else 0)
            seconds = size / rates[kind]
        if worst is None or seconds is None or (worst["seconds"] is not None and seconds > worst["seconds"]):
            worst = {"seconds": seconds, "rel": rel, "live": live}
        if seconds is None:
            break
    if worst is None:
        return {"seconds": 0.0, "low": 0.0, "high": 0.0, "relation": None, "text": "blocks nothing", "source": source}
    rel, live, seconds = worst["rel"], worst["live"] or {}, worst["seconds"]
    what = f"blocks {rel['blocks']} of {rel['relation']}"
    if live:
        what += (
            f" ({human_rows(int(live.get('rows') or 0))}, {human_bytes(float(live.get('size_bytes') or 0))},"
            f" ~{float(live.get('writes_per_s') or 0):g} writes/s, {int(live.get('sessions') or 0)} session(s) on it now)"
        )
    if seconds is None:
        text = f"{what} for an unknown time ({statement.get('cost') or 'statement'} that cannot be estimated)"
        return {"seconds": None, "low": None, "high": None, "relation": rel["relation"], "text": text, "source": source}
    low, high = seconds * RANGE[0], seconds * RANGE[1]
    span = _span(low, high)
    text = f"{what} for ~{span} ({statement.get('cost')} at the rate of {source})"
    return {
        "seconds": round(seconds, 2),
        "low": round(low, 2),
        "high": round(high, 2),
        "relation": rel["relation"],
        "text": text,
        "source": source,
    }
