"""Waivers: documented exceptions that let one finding of one service ship until a date.

A waiver applies while it is not revoked and ``at.date() < expires_on``: it stops applying at once
when revoked and from the first moment (UTC) of its expiry date. Granting and revoking each append
an audit event in the same transaction.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from persistence.audit import AuditRepository
from persistence.tables import WaiverRow

Rows = list[dict[str, Any]]
_WAIVER = WaiverRow.__table__


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _same_person(a: str, b: str) -> bool:
    return a.strip().casefold() == b.strip().casefold()


def check_grant(reason: str, requested_by: str, approver: str, expires_on: date, at: datetime) -> None:
    """Raise ValueError saying what to change when a waiver may not be granted as asked."""
    if not reason.strip():
        raise ValueError("a waiver needs a reason: say why the finding may ship and what limits the risk "
                         "(e.g. 'endpoint not exposed until 2.0; fix tracked in ORD-123')")
    if not requested_by.strip() or not approver.strip():
        raise ValueError("a waiver needs both the person who requests it and the one who approves it")
    if _same_person(requested_by, approver):
        raise ValueError(f"{approver.strip()!r} cannot approve their own waiver: ask someone else "
                         "(a second person who accepts the risk) to be the approver")
    if expires_on <= _utc(at).date():
        raise ValueError(f"expiry {expires_on.isoformat()} is not after today ({_utc(at).date().isoformat()}, UTC): "
                         "a waiver must expire on a later date — pick one, e.g. two weeks ahead")


def status_at(waiver: dict[str, Any], at: datetime) -> str:
    if waiver["revoked_at"] is not None:
        return "revoked"
    return "active" if _utc(at).date() < waiver["expires_on"] else "expired"


class WaiverRepository:
    def __init__(self, session: Session, audit: AuditRepository) -> None:
        self.session = session
        self.audit = audit

    def grant(self, service: str, fingerprint: str, reason: str, requested_by: str, approver: str,
              expires_on: date, at: datetime) -> dict[str, Any]:
        check_grant(reason, requested_by, approver, expires_on, at)
        self._refuse_overlap(service, fingerprint, at)
        row = {"service": service, "fingerprint": fingerprint, "reason": reason.strip(),
               "requested_by": requested_by.strip(), "approver": approver.strip(), "granted_at": at,
               "expires_on": expires_on}
        waiver = dict(self.session.execute(insert(_WAIVER).values(row).returning(*_WAIVER.c)).mappings().one())
        self.audit.append("waiver.granted", f"{service}:{fingerprint}", _audit_payload(waiver), at,
                          actor=waiver["approver"])
        return waiver | {"status": status_at(waiver, at)}

    def _refuse_overlap(self, service: str, fingerprint: str, at: datetime) -> None:
        for waiver in self.active(service, at):
            if waiver["fingerprint"] == fingerprint:
                raise ValueError(f"waiver #{waiver['id']} already covers {fingerprint[:12]} of {service} until "
                                 f"{waiver['expires_on'].isoformat()}: revoke it first to replace it")

    def revoke(self, waiver_id: int, by: str, reason: str, at: datetime) -> dict[str, Any]:
        waiver = self.get(waiver_id)
        if waiver is None:
            raise LookupError(f"no waiver #{waiver_id} — `releasegate waivers list` shows the ids")
        if waiver["revoked_at"] is not None:
            raise ValueError(f"waiver #{waiver_id} was already revoked at {waiver['revoked_at'].isoformat()} "
                             f"by {waiver['revoked_by']} ({waiver['revoke_reason']})")
        if not by.strip() or not reason.strip():
            raise ValueError("say who revokes the waiver and why (--by, --reason)")
        values = {"revoked_at": at, "revoked_by": by.strip(), "revoke_reason": reason.strip()}
        self.session.execute(update(_WAIVER).where(_WAIVER.c.id == waiver_id).values(**values))
        waiver |= values
        self.audit.append("waiver.revoked", f"{waiver['service']}:{waiver['fingerprint']}",
                          _audit_payload(waiver), at, actor=waiver["revoked_by"])
        return waiver | {"status": status_at(waiver, at)}

    def get(self, waiver_id: int) -> dict[str, Any] | None:
        row = self.session.execute(select(_WAIVER).where(_WAIVER.c.id == waiver_id)).mappings().first()
        return dict(row) if row else None

    def active(self, service: str, at: datetime) -> Rows:
        """The waivers that apply at ``at``: not revoked, and ``at``'s date (UTC) before the expiry date."""
        query = select(_WAIVER).where(_WAIVER.c.service == service, _WAIVER.c.revoked_at.is_(None),
                                      _WAIVER.c.expires_on > _utc(at).date()).order_by(_WAIVER.c.id)
        return [dict(r) | {"status": "active"} for r in self.session.execute(query).mappings()]

    def fingerprints(self, service: str, at: datetime) -> frozenset[str]:
        """The waived fingerprints, ready for ``defects.observe(waived=...)`` and the verdict."""
        return frozenset(w["fingerprint"] for w in self.active(service, at))

    def list(self, service: str | None = None, at: datetime | None = None) -> Rows:
        """Every waiver (newest first), each with its ``status`` at ``at`` (default: now)."""
        at = at or datetime.now(UTC)
        query = select(_WAIVER).order_by(_WAIVER.c.id.desc())
        if service is not None:
            query = query.where(_WAIVER.c.service == service)
        return [dict(r) | {"status": status_at(r, at)} for r in self.session.execute(query).mappings()]


def _audit_payload(waiver: dict[str, Any]) -> dict[str, Any]:
    keys = ("reason", "requested_by", "approver", "expires_on", "revoked_at", "revoked_by", "revoke_reason")
    return {"waiver_id": waiver["id"], **{k: waiver[k] for k in keys if waiver.get(k) is not None}}
