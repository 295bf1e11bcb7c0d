"""Defects: one row per service + fingerprint, moved through new → recurring → fixed → reopened.

A finding seen while its fingerprint is waived moves its defect to ``waived`` (occurrences still
count); seen again once no waiver covers it, the defect leaves ``waived`` for ``recurring``.
Observing a service takes a per-service lock (see persistence.locks) so that concurrent runs of one
service apply their sightings one after another and none is lost.

Observing the same run again is a no-op: a defect remembers the last run that saw it
(``last_run_id``, so a run counts once) and the run that caused its last transition
(``changed_run_id``, so a retry whose evidence changed undoes that run's own "fixed").
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from persistence.locks import advisory_lock
from persistence.tables import DefectRow, utcnow
from persistence.upsert import upsert

OPEN_STATES = frozenset({"new", "recurring", "reopened"})
FIXABLE_STATES = OPEN_STATES | {"waived"}  # a waived problem that goes away is fixed


class DefectRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def observe(self, service: str, run_id: str, findings: list[dict[str, Any]], completed_stages: set[str],
                seen_at: datetime, waived: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Apply one run's findings (each with a ``stage`` key) and return [{fingerprint, from, to}].

        ``seen_at`` should be the run's start time, so a late retry of an older run cannot fix a
        defect that a newer run saw.
        """
        seen_at = seen_at.replace(tzinfo=UTC) if seen_at.tzinfo is None else seen_at
        seen = {f["fingerprint"]: f for f in findings}
        advisory_lock(self.session, f"releasegate.defects:{service}")
        existing = {d["fingerprint"]: d for d in self._rows(service, lock=True)}
        transitions = [self._seen(service, run_id, finding, existing.get(fp), seen_at, fp in waived)
                       for fp, finding in seen.items()]
        transitions += [self._unseen(row, run_id, seen_at) for fp, row in existing.items()
                        if fp not in seen and row["stage"] in completed_stages]
        return [t for t in transitions if t is not None]

    def for_service(self, service: str) -> list[dict[str, Any]]:
        """Every defect of the service: state, severity, stage, kind, title, first/last run, occurrences,
        remediation and owner (all columns of the row)."""
        return self._rows(service)

    def get(self, service: str, fingerprint: str) -> dict[str, Any] | None:
        query = select(DefectRow.__table__).where(DefectRow.service == service, DefectRow.fingerprint == fingerprint)
        row = self.session.execute(query).mappings().first()
        return dict(row) if row else None

    def plan(self, service: str, fingerprint: str, remediation: str, owner: str) -> dict[str, Any]:
        """Record how the defect will be fixed and who owns that; returns the updated defect."""
        if not remediation.strip() or not owner.strip():
            raise ValueError("a remediation plan needs the plan text and an owner (--plan, --owner)")
        values = {"remediation": remediation.strip(), "owner": owner.strip(), "updated_at": utcnow()}
        result = self.session.execute(update(DefectRow).where(
            DefectRow.service == service, DefectRow.fingerprint == fingerprint).values(**values))
        if result.rowcount == 0:
            raise LookupError(f"no defect {fingerprint!r} for service {service!r} — "
                              f"`releasegate defects list --service {service}` shows them")
        return self.get(service, fingerprint) or {}

    def _rows(self, service: str, lock: bool = False) -> list[dict[str, Any]]:
        query = select(DefectRow.__table__).where(DefectRow.service == service).order_by(DefectRow.id)
        return [dict(r) for r in self.session.execute(query.with_for_update() if lock else query).mappings()]

    def _seen(self, service: str, run_id: str, finding: dict[str, Any], row: dict[str, Any] | None,
              seen_at: datetime, waived: bool) -> dict[str, Any] | None:
        if row is None:
            state = "waived" if waived else "new"
            self._insert(service, run_id, finding, seen_at, state)
            return {"fingerprint": finding["fingerprint"], "from": None, "to": state}
        state, counts = _state_when_seen(row, run_id, waived)
        if not counts and state == row["state"]:
            return None
        values = _describe(finding) | {"state": state, "last_run_id": run_id,
                                       "last_seen_at": max(seen_at, row["last_seen_at"])}
        if counts:
            values["occurrences"] = row["occurrences"] + 1
        return self._move(row, run_id, values)

    def _unseen(self, row: dict[str, Any], run_id: str, seen_at: datetime) -> dict[str, Any] | None:
        if row["state"] not in FIXABLE_STATES or seen_at < row["last_seen_at"]:
            return None
        return self._move(row, run_id, {"state": "fixed"})

    def _move(self, row: dict[str, Any], run_id: str, values: dict[str, Any]) -> dict[str, Any] | None:
        changed = values["state"] != row["state"]
        if changed:
            values |= {"previous_state": row["state"], "changed_run_id": run_id}
        self.session.execute(update(DefectRow).where(DefectRow.id == row["id"]).values(**values, updated_at=utcnow()))
        return {"fingerprint": row["fingerprint"], "from": row["state"], "to": values["state"]} if changed else None

    def _insert(self, service: str, run_id: str, finding: dict[str, Any], seen_at: datetime, state: str) -> None:
        row = _describe(finding) | {
            "service": service, "fingerprint": finding["fingerprint"], "state": state, "first_run_id": run_id,
            "last_run_id": run_id, "changed_run_id": run_id, "first_seen_at": seen_at, "last_seen_at": seen_at,
            "occurrences": 1, "updated_at": utcnow()}
        # belt and braces: observe() holds the service's lock, so no concurrent run inserts it first
        upsert(self.session, DefectRow.__table__, row, ["service", "fingerprint"], update=False)


def _state_when_seen(row: dict[str, Any], run_id: str, waived: bool) -> tuple[str, bool]:
    """(state after this run saw the defect, whether this sighting adds an occurrence)."""
    undo = row["state"] == "fixed" and row["changed_run_id"] == run_id  # this run's earlier attempt fixed it
    base = row["previous_state"] if undo else row["state"]
    counts = row["last_run_id"] != run_id  # not yet counted for this run
    if waived:
        return "waived", counts
    if base == "waived":  # its waiver expired or was revoked
        return "recurring", counts
    if not counts:
        return base, False
    return ("reopened" if base == "fixed" else "recurring"), True


def _describe(finding: dict[str, Any]) -> dict[str, Any]:
    return {"stage": finding.get("stage", ""), "kind": finding["kind"], "rule": finding["rule"],
            "title": finding.get("title", ""), "severity": getattr(finding["severity"], "value", finding["severity"])}
