"""The audit trail: append-only events, each hashed together with the previous event's hash.

Appends are serialised so the chain never forks: on PostgreSQL by a transaction-scoped advisory
lock taken before the head is read, on SQLite by the unit of work's ``BEGIN IMMEDIATE``. The lock
is held until commit, so append audit events **last** in a unit of work (after any other lock, such
as the one ``defects.observe`` takes): a consistent order is what keeps writers free of deadlocks.

``audit_head`` records the last event's id and hash in the same transaction, so removing events from
the end of the chain (which linkage alone cannot show) is detected too. This detects edits made
outside ``append``; someone who can rewrite every row and the head can forge a chain, so keep
backups (``releasegate db backup``) somewhere the database's users cannot write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from persistence.locks import advisory_lock
from persistence.tables import AuditEventRow, AuditHeadRow
from persistence.upsert import upsert

GENESIS = "0" * 64
CHAIN_LOCK = "releasegate.audit"
_EVENT = AuditEventRow.__table__
_HASHED = ("id", "at", "kind", "subject", "run_id", "actor", "payload", "event_key")


def _json_default(value: Any) -> str:
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def canonical_json(value: Any) -> str:
    """Sorted keys, no whitespace, datetimes as ISO 8601 in UTC: the same value always gives the same text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default)


def event_hash(prev_hash: str, event: dict[str, Any]) -> str:
    body = canonical_json({k: event[k] for k in _HASHED})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, kind: str, subject: str, payload: dict[str, Any], at: datetime, run_id: str | None = None,
               actor: str | None = None, key: str | None = None) -> dict[str, Any] | None:
        """Add one event at the end of the chain; None (and nothing written) when ``key`` was appended before."""
        advisory_lock(self.session, CHAIN_LOCK)
        if key is not None and self._has_key(key):
            return None
        prev_hash = self._head()[1]
        # what the database hands back (JSONB normalises a payload) is what gets hashed
        row = {"at": at, "kind": kind, "subject": subject, "run_id": run_id, "actor": actor,
               "payload": json.loads(canonical_json(payload)), "event_key": key, "prev_hash": prev_hash, "hash": ""}
        stored = dict(self.session.execute(insert(_EVENT).values(row).returning(*_EVENT.c)).mappings().one())
        stored["hash"] = event_hash(prev_hash, stored)
        self.session.execute(update(_EVENT).where(_EVENT.c.id == stored["id"]).values(hash=stored["hash"]))
        upsert(self.session, AuditHeadRow.__table__, {"id": 1, "last_id": stored["id"], "hash": stored["hash"]},
               ["id"])
        return stored

    def _has_key(self, key: str) -> bool:
        return self.session.execute(select(_EVENT.c.id).where(_EVENT.c.event_key == key)).first() is not None

    def _head(self) -> tuple[int | None, str]:
        head = self.session.execute(select(AuditHeadRow.last_id, AuditHeadRow.hash)).first()
        return (head.last_id, head.hash) if head else (None, GENESIS)

    def events(self, run_id: str | None = None, kind: str | None = None) -> list[dict[str, Any]]:
        query = select(_EVENT).order_by(_EVENT.c.id)
        if run_id is not None:
            query = query.where(_EVENT.c.run_id == run_id)
        if kind is not None:
            query = query.where(_EVENT.c.kind == kind)
        return [dict(r) for r in self.session.execute(query).mappings()]

    def count(self) -> int:
        return self.session.execute(select(func.count()).select_from(_EVENT)).scalar_one()

    def verify(self) -> dict[str, Any]:
        """Recompute the chain: {ok, checked, first_bad_id, problem}. Appends wait while it reads."""
        advisory_lock(self.session, CHAIN_LOCK, shared=True)
        head_id, head_hash = self._head()
        checked, prev = 0, {"id": None, "hash": GENESIS}
        for event in self._stream():
            problem = _link_problem(prev, event) or _hash_problem(prev["hash"], event)
            if problem is None and head_id is not None and event["id"] > head_id:
                problem = f"not covered by the chain head (#{head_id}): appended outside audit.append"
            if problem:
                return _broken(checked, event["id"], problem)
            checked, prev = checked + 1, event
        return _head_problem(checked, prev, head_id, head_hash) or {
            "ok": True, "checked": checked, "first_bad_id": None, "problem": None}

    def _stream(self) -> Iterator[dict[str, Any]]:
        result = self.session.execute(select(_EVENT).order_by(_EVENT.c.id).execution_options(yield_per=1000))
        return (dict(r) for r in result.mappings())


def _link_problem(prev: dict[str, Any], event: dict[str, Any]) -> str | None:
    if event["prev_hash"] == prev["hash"]:
        return None
    after = f"event #{prev['id']}" if prev["id"] is not None else "the start of the chain"
    return f"previous hash does not match {after} (an event before it was removed or altered)"


def _hash_problem(prev_hash: str, event: dict[str, Any]) -> str | None:
    return None if event_hash(prev_hash, event) == event["hash"] else "hash mismatch (row altered)"


def _head_problem(checked: int, last: dict[str, Any], head_id: int | None, head_hash: str) -> dict[str, Any] | None:
    if head_id is None:
        return None if checked == 0 else _broken(checked, last["id"], "no chain head recorded (audit_head was emptied)")
    if head_id == last["id"] and head_hash == last["hash"]:
        return None
    if head_id == last["id"]:
        return _broken(checked, head_id, "the chain head's hash differs (audit_head altered)")
    ends = f"the chain ends at #{last['id']}" if last["id"] is not None else "the chain is empty"
    return _broken(checked, head_id, f"missing: the chain head records #{head_id} but {ends} "
                                     "(events were removed from the end)")


def _broken(checked: int, event_id: int | None, problem: str) -> dict[str, Any]:
    return {"ok": False, "checked": checked, "first_bad_id": event_id, "problem": problem}
