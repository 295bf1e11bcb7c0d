"""Defects: one row per service + fingerprint, stored and loaded; the lifecycle's rules are the core's.

How a run moves a defect (new, recurring, fixed, reopened, waived) is ``releasegate.domain.defect_lifecycle``, a pure
function of the stored row, the run and its sighting; this module loads a service's defects, applies that
function to each of them in memory and writes the result in bulk. Observing a service takes a per-service lock
(see persistence.locks) so that concurrent runs of one service apply their sightings one after another and none
is lost. Observing the same run again is a no-op.
"""

from __future__ import annotations

from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from persistence.bulk import BATCH, insert_rows, quiet_gc
from persistence.locks import advisory_lock
from persistence.repositories import _rowcount
from persistence.tables import DefectRow, utcnow
from releasegate.domain.defect_lifecycle import DefectState, Sighting, transition

_TABLE = DefectRow.__table__
_TEXT = {state: state.value for state in DefectState}  # what a state is stored as (and plain str in audit events)
INSERT_COLUMNS = ("service", "fingerprint", "stage", "kind", "rule", "title", "severity", "state", "previous_state",
                  "first_run_id", "last_run_id", "changed_run_id", "first_seen_at", "last_seen_at", "occurrences",
                  "updated_at")
NEW_COLUMNS = ("fingerprint", "stage", "kind", "rule", "title", "severity")  # where a run's new defects differ
UPDATE_COLUMNS = ("stage", "kind", "rule", "title", "severity", "state", "previous_state", "last_run_id",
                  "changed_run_id", "last_seen_at", "occurrences", "updated_at")


class DefectRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def observe(self, service: str, run_id: str, findings: list[dict[str, Any]], completed_stages: set[str],
                seen_at: datetime, waived: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
        """Apply one run's findings (each with a ``stage`` key) and return [{fingerprint, from, to}].

        ``seen_at`` should be the run's start time, so a late retry of an older run cannot fix a
        defect that a newer run saw. Transitions are computed in memory, then written in bulk: the new
        defects in one insert (COPY on PostgreSQL), the changed ones in one executemany update.
        """
        return self.record(service, run_id, findings, completed_stages, seen_at, waived)[0]

    def record(self, service: str, run_id: str, findings: list[dict[str, Any]], completed_stages: set[str],
               seen_at: datetime, waived: frozenset[str] = frozenset(),
               ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """``observe``, and every defect of the service as it stands afterwards (what ``for_service`` would read
        back, in the same order, without reading it back)."""
        seen_at = seen_at.replace(tzinfo=UTC) if seen_at.tzinfo is None else seen_at
        seen = {f["fingerprint"]: f for f in findings}
        advisory_lock(self.session, f"releasegate.defects:{service}")
        with quiet_gc():
            existing = {d["fingerprint"]: d for d in self._rows(service, lock=True)}
            plan = _Plan(service, run_id, seen_at, utcnow())
            plan.top_id = max((row["id"] for row in existing.values()), default=0)
            for fp, finding in seen.items():
                plan.seen(finding, existing.get(fp), fp in waived)
            for fp, row in existing.items():
                if fp not in seen and row["stage"] in completed_stages:
                    plan.unseen(row)
            self._write(plan)
            return plan.transitions, plan.after(existing)

    def _write(self, plan: _Plan) -> None:
        for first, rows in plan.new.values():  # per way of being first seen: the rest of the row is the same
            constants = {c: first[c] for c in INSERT_COLUMNS if c not in NEW_COLUMNS}
            insert_rows(self.session, _TABLE, NEW_COLUMNS, map(itemgetter(*NEW_COLUMNS), rows), constants)
        inserts = plan.inserts()
        if inserts:  # the ids the database gave them, so the rows are known whole without reading them all
            for row, row_id in zip(inserts, self._new_ids(plan, len(inserts)), strict=True):
                row["id"] = row_id
        if plan.updates:
            statement = update(_TABLE).where(_TABLE.c.id == bindparam("b_id")).values(
                {c: bindparam(f"b_{c}") for c in UPDATE_COLUMNS})
            for chunk in (plan.updates[i:i + BATCH] for i in range(0, len(plan.updates), BATCH)):
                self.session.execute(statement, [{f"b_{k}": v for k, v in row.items()} for row in chunk])

    def _new_ids(self, plan: _Plan, written: int) -> list[int]:
        """The ids of the rows just inserted, in the order they were written: the service's rows past every id it
        had before (the service's lock keeps its other writers out), which COPY and executemany number in order."""
        query = select(_TABLE.c.id).where(_TABLE.c.service == plan.service, _TABLE.c.id > plan.top_id,
                                          _TABLE.c.first_run_id == plan.run_id).order_by(_TABLE.c.id)
        ids = list(self.session.scalars(query))
        if len(ids) != written:
            raise RuntimeError(f"{written} defects were written for {plan.service} but {len(ids)} read back")
        return ids

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
        if _rowcount(result) == 0:
            raise LookupError(f"no defect {fingerprint!r} for service {service!r} — "
                              f"`releasegate defects list --service {service}` shows them")
        return self.get(service, fingerprint) or {}

    def _rows(self, service: str, lock: bool = False) -> list[dict[str, Any]]:
        query = select(DefectRow.__table__).where(DefectRow.service == service).order_by(DefectRow.id)
        with quiet_gc():
            result = self.session.execute(query.with_for_update() if lock else query)
            names = tuple(result.keys())
            return [dict(zip(names, row, strict=True)) for row in result]


class _Plan:
    """One run's sightings turned into rows to insert, rows to update and transitions, before anything is written."""

    def __init__(self, service: str, run_id: str, seen_at: datetime, now: datetime) -> None:
        self.service, self.run_id, self.seen_at, self.now = service, run_id, seen_at, now
        self.new: dict[Sighting, tuple[dict[str, Any], list[dict[str, Any]]]] = {}  # by how first seen: (what
        # that sets, the new defects) -- a first sighting moves every new defect of the run the same way
        self.updates: list[dict[str, Any]] = []
        self.transitions: list[dict[str, Any]] = []
        self.top_id = 0  # the highest id among the service's defects before this plan

    def inserts(self) -> list[dict[str, Any]]:
        """The new defects, in the order they are written."""
        return [row for _first, rows in self.new.values() for row in rows]

    def seen(self, finding: dict[str, Any], row: dict[str, Any] | None, waived: bool) -> None:
        sighting = Sighting.waived if waived else Sighting.seen
        if row is None:
            group = self.new.get(sighting)
            if group is None:  # worked out once per run and way of being seen
                first = {"service": self.service, **_stored(transition(None, self.run_id, sighting, self.seen_at)),
                         "updated_at": self.now, "remediation": None, "owner": None}
                group = self.new[sighting] = (first, [])
            fingerprint = finding["fingerprint"]
            group[1].append({**group[0], "fingerprint": fingerprint, **_describe(finding)})
            self.transitions.append({"fingerprint": fingerprint, "from": None, "to": group[0]["state"]})
            return
        fields = transition(row, self.run_id, sighting, self.seen_at)
        if fields:
            self._move(row, _describe(finding) | _stored(fields))

    def after(self, existing: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Every defect of the service once this plan is written, by id (as the table would give them back)."""
        changed = {row["id"]: row for row in self.updates}
        rows = [{**row, **changed.get(row["id"], {})} for row in existing.values()]
        return sorted(rows + self.inserts(), key=lambda row: row["id"])

    def unseen(self, row: dict[str, Any]) -> None:
        fields = transition(row, self.run_id, Sighting.unseen, self.seen_at)
        if fields:
            self._move(row, _stored(fields))

    def _move(self, row: dict[str, Any], values: dict[str, Any]) -> None:
        if values["state"] != row["state"]:
            self.transitions.append({"fingerprint": row["fingerprint"], "from": row["state"], "to": values["state"]})
        self.updates.append({"id": row["id"], **{c: row[c] for c in UPDATE_COLUMNS}, **values, "updated_at": self.now})


def _stored(fields: dict[str, Any]) -> dict[str, Any]:
    """The lifecycle's fields as the table holds them: states as their plain text."""
    fields["state"] = _TEXT[fields["state"]]
    if "previous_state" in fields:
        fields["previous_state"] = _TEXT.get(fields["previous_state"])
    return fields


def _describe(finding: dict[str, Any]) -> dict[str, Any]:
    return {"stage": _text(finding.get("stage", "")), "kind": _text(finding["kind"]), "rule": _text(finding["rule"]),
            "title": _text(finding.get("title", "")),
            "severity": getattr(finding["severity"], "value", finding["severity"])}


def _text(value: str) -> str:
    """Text as every backend stores it, the same on insert and update: without NUL (PostgreSQL refuses it)."""
    return value.replace("\x00", "") if "\x00" in value else value
