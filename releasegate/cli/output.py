"""What a command answers: its exit code (a contract: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 could not start) and its
text, a verdict described in a few lines or a listing as JSON or one line per row."""

from __future__ import annotations

import json
from collections.abc import Callable

EXIT = {"GO": 0, "NO_GO": 1, "INCONCLUSIVE": 3}
EXIT_CANNOT_START = 2


def describe(data: dict) -> str:
    lines = [f"{data['service']} {data['version']}: {data['decision']}  (run {data['run_id']})"]
    lines += [f"  - [{r['severity']}] {r['stage']}: {r['message']}{_where(r)}" for r in data["reasons"]]
    lines += [f"  waived #{w['id']} ({w['fingerprint'][:12]}) until {w['expires_on']}, approved by {w['approver']}: "
              f"{w['title']}" for w in data.get("waivers", [])]
    lines.append(f"  report: {data['report']}")
    return "\n".join(lines)


def _where(reason: dict) -> str:
    """Where a finding is (`app/db.py:12`, a test's node id), when its message does not already say."""
    where = reason.get("evidence") or ""
    return f" ({where})" if where and where not in reason["message"] else ""


def print_rows(rows: list[dict], as_json: bool, line: Callable[[dict], str]) -> int:
    """A listing: one JSON array, or one line per row."""
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for row in rows:
            print(line(row))
    return 0
