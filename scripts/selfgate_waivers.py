"""`make selfgate`, before the run: grant the waivers gate-waivers.yaml documents that are not live yet.

CI starts the self-gate from an empty gate database, so releasegate's own waivers are kept in a reviewed file
and granted here through the gate's waiver rules (approver other than the requester, expiry within the policy's
waivers.max_days) and audit trail, for findings the database may not have seen yet (`admin.waive(unseen=True)`).
A waiver already live is left as it is; an entry past its expiry is not granted, so its finding blocks again.

    python scripts/selfgate_waivers.py gate-waivers.yaml --policy gate.yaml    # 0 done, 2 refused
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

FIELDS = ("fingerprint", "finding", "reason", "requested_by", "approver", "expires")


class WaiverFileError(Exception):
    """The waiver file cannot be read as written; the message names the entry and the fix."""


@dataclass(frozen=True)
class Entry:
    fingerprint: str
    finding: str
    reason: str
    requested_by: str
    approver: str
    expires: date


def parse_entries(doc: Any, file: str) -> list[Entry]:
    """The `waivers:` list of a waiver file as entries, every field present and of its type."""
    items = doc.get("waivers") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise WaiverFileError(f"{file}: expected a top-level 'waivers:' list of entries with {', '.join(FIELDS)}")
    return [_entry(item, f"{file}: waivers[{i}]") for i, item in enumerate(items)]


def _entry(item: Any, where: str) -> Entry:
    if not isinstance(item, dict) or set(item) != set(FIELDS):
        given = sorted(item) if isinstance(item, dict) else type(item).__name__
        raise WaiverFileError(f"{where}: expected exactly the keys {', '.join(FIELDS)}, got {given}")
    texts = {k: item[k] for k in FIELDS if k != "expires"}
    empty = [k for k, v in texts.items() if not isinstance(v, str) or not v.strip()]
    if empty:
        raise WaiverFileError(f"{where}: {', '.join(empty)} must be non-empty text")
    return Entry(expires=_day(item["expires"], where), **{k: v.strip() for k, v in texts.items()})


def _day(value: Any, where: str) -> date:
    try:
        return value if isinstance(value, date) else date.fromisoformat(str(value))
    except ValueError:
        raise WaiverFileError(f"{where}: expires {value!r}: write a date as YYYY-MM-DD, e.g. 2027-03-01") from None


def apply(entries: list[Entry], service: str, policy: Path, today: date) -> list[str]:
    """Grant each entry not live yet and not expired; one line per entry saying what happened."""
    from releasegate.records import admin

    live = {w["fingerprint"]: w for w in admin.list_waivers(service) if w["status"] == "active"}
    lines = []
    for entry in entries:
        short = f"{entry.fingerprint[:12]} ({entry.finding})"
        if entry.fingerprint in live:
            lines.append(f"waiver #{live[entry.fingerprint]['id']} live for {short}")
        elif entry.expires <= today:
            lines.append(f"NOT granted, expired on {entry.expires}: {short} blocks until the code is fixed or a "
                         "reviewed change renews the entry")
        else:
            granted = admin.waive(entry.fingerprint, service, entry.reason, entry.requested_by, entry.approver,
                                  entry.expires, policy=str(policy), unseen=True)
            lines.append(f"waiver #{granted['id']} granted for {short} until {entry.expires}, "
                         f"approved by {granted['approver']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, help="the waiver file, e.g. gate-waivers.yaml")
    parser.add_argument("--policy", type=Path, required=True, help="the gate.yaml the waivers belong to")
    args = parser.parse_args(argv)
    import yaml

    from releasegate.domain.errors import ReleaseGateError
    from releasegate.policy import load_policy

    try:
        service = load_policy(args.policy).service
        entries = parse_entries(yaml.safe_load(args.file.read_text(encoding="utf-8")), str(args.file))
        lines = apply(entries, service, args.policy, datetime.now(UTC).date())
    except (OSError, yaml.YAMLError, WaiverFileError, ReleaseGateError) as exc:
        print(f"selfgate waivers: refused: {exc}", file=sys.stderr)
        return 2
    for line in lines:
        print(f"selfgate waivers: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
