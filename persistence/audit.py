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
from json.encoder import encode_basestring  # what json.dumps(ensure_ascii=False) uses
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from persistence.bulk import JsonText, flat_json, insert_rows, quiet_gc
from persistence.locks import advisory_lock
from persistence.tables import AuditEventRow, AuditHeadRow
from persistence.upsert import upsert

GENESIS = "0" * 64
CHAIN_LOCK = "releasegate.records.audit"
_EVENT = AuditEventRow.__table__
_HASHED = ("id", "at", "kind", "subject", "run_id", "actor", "payload", "event_key")
_COLUMNS = (*_HASHED, "prev_hash", "hash")
_PLAIN = (str, int, bool)  # JSON gives these back as they went in (floats and nested values may change)


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
    return hashlib.sha256((prev_hash + _hashed_body(event)).encode("utf-8")).hexdigest()


class _NotPlain(Exception):
    pass


def _hashed_body(event: dict[str, Any], payload_json: str | None = None) -> str:
    """``canonical_json`` of the hashed fields, written out directly for the usual event (text, ids, a datetime):
    the same text, without a generic encoder per event. ``payload_json``: ``canonical_payload`` of the payload,
    when the caller has it already (JSON is written piece by piece, so the payload's text is the same inside)."""
    try:
        payload = payload_json if payload_json is not None else canonical_payload(event["payload"])
        return (f'{{"actor":{_plain(event["actor"])},"at":{_plain(event["at"])},'
                f'"event_key":{_plain(event["event_key"])},"id":{_plain(event["id"])},"kind":{_plain(event["kind"])},'
                f'"payload":{payload},"run_id":{_plain(event["run_id"])},'
                f'"subject":{_plain(event["subject"])}}}')
    except _NotPlain:
        return canonical_json({k: event[k] for k in _HASHED})


def canonical_payload(payload: Any) -> str:
    """``canonical_json`` of a payload (a flat dict of plain values from a cache: they recur by the thousand)."""
    if type(payload) is dict and _flat_plain(payload):
        return flat_json(payload, sort_keys=True)
    return canonical_json(payload)


def _plain(value: Any) -> str:
    if value is None:
        return "null"
    kind = type(value)
    if kind is str:
        return encode_basestring(value)
    if kind is int:
        return int.__repr__(value)
    if kind is datetime:
        return encode_basestring(_json_default(value))
    raise _NotPlain


def _flat_plain(payload: dict[str, Any]) -> bool:
    return all(type(k) is str and (v is None or type(v) in _PLAIN) for k, v in payload.items())


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def append(self, kind: str, subject: str, payload: dict[str, Any], at: datetime, run_id: str | None = None,
               actor: str | None = None, key: str | None = None) -> dict[str, Any] | None:
        """Add one event at the end of the chain; None (and nothing written) when ``key`` was appended before."""
        stored = self.append_many([{"kind": kind, "subject": subject, "payload": payload, "at": at,
                                    "run_id": run_id, "actor": actor, "key": key}])
        return stored[0] if stored else None

    def append_many(self, events: list[dict[str, Any]], redacted: bool = False) -> list[dict[str, Any]]:
        """Add events (each with kind, subject, payload, at and optionally run_id, actor, key) at the end of the
        chain, in order, in one bulk insert; events whose key was appended before are left out. Returns the
        appended rows. ``redacted``: the caller has passed subject, payload, actor and key through the gate's
        redaction already (a scrubbing repository does not go over them again).

        The chain lock is taken here and held to the end of the transaction: call this last in a unit of work,
        once, so the lock is held only for the append itself."""
        if not events:
            return []
        advisory_lock(self.session, CHAIN_LOCK)
        fresh = self._fresh(events)
        if not fresh:
            return []
        head_id, prev_hash = self._head()
        rows, stored = [], []
        with quiet_gc():
            for event_id, event in zip(self._next_ids(len(fresh), head_id), fresh, strict=True):
                row, payload_json = _row(event_id, event, prev_hash)
                prev_hash = row["hash"]
                rows.append(row)
                stored.append(tuple(JsonText(payload_json) if c == "payload" else row[c] for c in _COLUMNS))
            insert_rows(self.session, _EVENT, _COLUMNS, stored)  # each payload as the text that was hashed
        upsert(self.session, AuditHeadRow.__table__, {"id": 1, "last_id": rows[-1]["id"], "hash": prev_hash}, ["id"])
        return rows

    def _fresh(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The events whose key is new (to the database and to the batch)."""
        keys = [e["key"] for e in events if e.get("key") is not None]
        known: set[str] = set()
        if keys and self.session.get_bind().dialect.name == "postgresql":  # one statement, the keys as one array
            known.update(self.session.scalars(text("SELECT event_key FROM audit_events WHERE event_key = ANY(:keys)"),
                                              {"keys": keys}))
            keys = []
        for chunk in (keys[i:i + 500] for i in range(0, len(keys), 500)):
            known.update(self.session.scalars(select(_EVENT.c.event_key).where(_EVENT.c.event_key.in_(chunk))))
        return self._first_of_each(events, known)

    @staticmethod
    def _first_of_each(events: list[dict[str, Any]], known: set[str]) -> list[dict[str, Any]]:
        fresh = []
        for event in events:
            key = event.get("key")
            if key is None or key not in known:
                fresh.append(event)
                if key is not None:
                    known.add(key)
        return fresh

    def _next_ids(self, count: int, head_id: int | None) -> list[int]:
        """Ids for ``count`` new events, in order, taken while the chain lock is held."""
        if self.session.get_bind().dialect.name == "postgresql":
            ids = self.session.scalars(text(
                "SELECT nextval(pg_get_serial_sequence('audit_events', 'id')) FROM generate_series(1, :n)"),
                {"n": count})
            return sorted(ids)
        # SQLite (AUTOINCREMENT): past every id ever used, as the writer that holds BEGIN IMMEDIATE
        used = self.session.execute(text("SELECT seq FROM sqlite_sequence WHERE name = 'audit_events'")).scalar()
        top = max(used or 0, head_id or 0, self.session.execute(select(func.max(_EVENT.c.id))).scalar() or 0)
        return list(range(top + 1, top + 1 + count))

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
        checked = 0
        prev: dict[str, Any] = {"id": None, "hash": GENESIS}
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


def _row(event_id: int, event: dict[str, Any], prev_hash: str) -> tuple[dict[str, Any], str]:
    """The stored row of an event, hashed as it will read back: the payload as JSON gives it back, ``at`` a
    datetime (what the database hands back is what gets hashed and verified); and the payload's canonical JSON,
    written once for the hash and the insert."""
    at = event["at"]
    row = {"id": event_id, "at": datetime.fromisoformat(at) if isinstance(at, str) else at,
           "kind": _storable(event["kind"]), "subject": _storable(event["subject"]),
           "run_id": _storable(event.get("run_id")), "actor": _storable(event.get("actor")),
           "payload": _as_read_back(_storable(event["payload"])), "event_key": _storable(event.get("key")),
           "prev_hash": prev_hash}
    payload_json = canonical_payload(row["payload"])
    row["hash"] = hashlib.sha256((prev_hash + _hashed_body(row, payload_json)).encode("utf-8")).hexdigest()
    return row, payload_json


def _storable(value: Any) -> Any:
    """A value as every backend keeps it, so the hash computed now is the hash ``verify`` recomputes: text without
    NUL (PostgreSQL text and JSON cannot hold it), and floats as their text (JSONB rewrites numbers: -0.0 becomes
    0, 1e16 an integer, NaN is refused). Values without either come back as the very object."""
    kind = type(value)
    if kind is str:
        return value.replace("\x00", "") if "\x00" in value else value
    if kind is float:
        return repr(value)
    if kind is dict:
        items = {k: _storable(v) for k, v in value.items()}
        return value if all(items[k] is v for k, v in value.items()) else items
    if kind is list:
        if all(type(v) is str and "\x00" not in v for v in value):  # a list of fingerprints, say
            return value
        members = [_storable(v) for v in value]
        return value if all(a is b for a, b in zip(members, value, strict=True)) else members
    return value


def _as_read_back(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload as the database will give it back: a flat one of plain values is that already."""
    if all(type(k) is str and (v is None or type(v) in _PLAIN or (type(v) is list and all(
            x is None or type(x) in _PLAIN for x in v))) for k, v in payload.items()):
        return {k: list(v) if type(v) is list else v for k, v in payload.items()}  # JSON gives these back as they are
    read_back: dict[str, Any] = json.loads(canonical_json(payload))
    return read_back


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
