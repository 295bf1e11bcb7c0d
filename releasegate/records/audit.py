"""Audit events for every state change of a run, written in the same transaction as the change.

Each event has a key derived from what changed, so a retried or cleared task that changes nothing
writes no second event; a real change (an error, then a pass) is a new event. Subject and payload are
redacted before the key is derived and before anything is appended: the trail is append-only and
hash-chained, so a secret that reached it could never be removed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any


def event_key(run_id: str, kind: str, subject: str, payload: dict[str, Any]) -> str:
    from persistence.bulk import flat_json

    canonical = (flat_json(payload, sort_keys=True, ensure_ascii=True) if type(payload) is dict else
                 json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str))
    return f"{run_id}:{kind}:{subject}:{hashlib.sha256(canonical.encode()).hexdigest()[:16]}"


def transition_events(service: str, transitions: list[dict[str, Any]], stage_of: dict[str, str]) -> list[dict]:
    """A run's defect transitions as audit events: one per stage and move (``new``, ``recurring -> fixed``...),
    naming every defect that made it, so the trail holds each transition and a 20,000-finding scan adds a
    handful of events rather than 20,000."""
    moves: dict[tuple[str, str, str], list[str]] = {}
    for change in transitions:
        key = (stage_of.get(change["fingerprint"], ""), change.get("from") or "", change["to"])
        moves.setdefault(key, []).append(change["fingerprint"])
    return [{"kind": "defect.transitions", "subject": f"{service}:{stage}:{before or 'none'}->{after}",
             "payload": {"stage": stage, "from": before or None, "to": after, "count": len(fps),
                         "fingerprints": sorted(fps)}}
            for (stage, before, after), fps in sorted(moves.items())]


def record_many(uow, events: list[dict[str, Any]], at: datetime, run_id: str | None = None,
                actor: str | None = None, keep: frozenset[str] = frozenset()) -> int:
    """Append ``events`` (each with kind, subject and payload) in one batch, keyed and redacted as ``record`` does
    (the values of payload keys in ``keep``, identifiers the gate computed, are left as they are); return how many
    were new. Call it last in the unit of work: it holds the chain lock from here to the commit."""
    from releasegate.redact import redact_data

    clean = redact_data([{"kind": e["kind"], "subject": e["subject"], "payload": e["payload"]}
                         for e in events], keep=keep)  # in one pass
    actor, keyed_run = redact_data(actor), redact_data(run_id or "-")
    batch = [{"kind": c["kind"], "subject": c["subject"], "payload": c["payload"], "at": at, "run_id": run_id,
              "actor": actor, "key": event_key(keyed_run, c["kind"], c["subject"], c["payload"])}
             for e, c in zip(events, clean, strict=True)]
    return len(uow.audit.append_many(batch, redacted=True))  # redacted here, before the keys were derived


def record(uow, kind: str, subject: str, payload: dict[str, Any], at: datetime, run_id: str | None = None,
           actor: str | None = None, identity: dict[str, Any] | None = None) -> None:
    """`identity`: the part of the payload that makes the change (default: all of it); fields outside it,
    such as the hash of a manifest that quotes timestamps, are recorded but do not make a new event."""
    from releasegate.redact import redact, redact_data

    subject, payload = redact(subject), redact_data(payload)
    key = event_key(run_id or "-", kind, subject, payload if identity is None else redact_data(identity))
    uow.audit.append(kind, subject, payload, at, run_id=run_id, actor=actor, key=key)
