"""Waivers: documented exceptions that let one finding of one service ship until a date.

A waiver applies while it is not revoked and ``at.date() < expires_on``: it stops applying at once
when revoked and from the first moment (UTC) of its expiry date. Granting and revoking each append
an audit event in the same transaction.

This module stores; the rules a waiver must satisfy first (distinct requester and approver in
canonical form, an expiry within the policy's limit) are the core's ``releasegate.waiver_rules``.
Storage keeps two guarantees of its own: one live waiver per finding, and the table's check that
approver and requester differ.
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


def status_at(waiver: dict[str, Any], at: datetime) -> str:
    if waiver["revoked_at"] is not None:
        return "revoked"
    return "active" if _utc(at).date() < waiver["expires_on"] else "expired"


class WaiverRepository:
    def __init__(self, session: Session, audit: AuditRepository) -> None:
        self.session = session
        self.audit = audit

    def grant(self, service: str, fingerprint: str, reason: str, requested_by: str, approver: str,
              expires_on: date, at: datetime, caller: dict[str, str] | None = None) -> dict[str, Any]:
        """Store a waiver the core's rules accepted; ``caller`` (who ran the command) goes into the audit event."""
        self._refuse_overlap(service, fingerprint, at)
        row = {"service": service, "fingerprint": fingerprint, "reason": reason, "requested_by": requested_by,
               "approver": approver, "granted_at": at, "expires_on": expires_on}
        waiver = dict(self.session.execute(insert(_WAIVER).values(row).returning(*_WAIVER.c)).mappings().one())
        self.audit.append("waiver.granted", f"{service}:{fingerprint}", _audit_payload(waiver, caller), at,
                          actor=waiver["approver"])
        return waiver | {"status": status_at(waiver, at)}

    def _refuse_overlap(self, service: str, fingerprint: str, at: datetime) -> None:
        for waiver in self.active(service, at):
            if waiver["fingerprint"] == fingerprint:
                raise ValueError(f"waiver #{waiver['id']} already covers {fingerprint[:12]} of {service} until "
                                 f"{waiver['expires_on'].isoformat()}: revoke it first to replace it")

    def revoke(self, waiver_id: int, by: str, reason: str, at: datetime,
               caller: dict[str, str] | None = None) -> dict[str, Any]:
        """Stop a waiver applying from ``at``; ``by`` and ``reason`` as the core's rules accepted them."""
        waiver = self.get(waiver_id)
        if waiver is None:
            raise LookupError(f"no waiver #{waiver_id} — `releasegate waivers list` shows the ids")
        if waiver["revoked_at"] is not None:
            raise ValueError(f"waiver #{waiver_id} was already revoked at {waiver['revoked_at'].isoformat()} "
                             f"by {waiver['revoked_by']} ({waiver['revoke_reason']})")
        values = {"revoked_at": at, "revoked_by": by, "revoke_reason": reason}
        self.session.execute(update(_WAIVER).where(_WAIVER.c.id == waiver_id).values(**values))
        waiver |= values
        self.audit.append("waiver.revoked", f"{waiver['service']}:{waiver['fingerprint']}",
                          _audit_payload(waiver, caller), at, actor=waiver["revoked_by"])
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
        rows = [dict(r) for r in self.session.execute(query).mappings()]
        return [row | {"status": status_at(row, at)} for row in rows]


def _audit_payload(waiver: dict[str, Any], caller: dict[str, str] | None = None) -> dict[str, Any]:
    keys = ("reason", "requested_by", "approver", "expires_on", "revoked_at", "revoked_by", "revoke_reason")
    payload = {"waiver_id": waiver["id"], **{k: waiver[k] for k in keys if waiver.get(k) is not None}}
    return payload | ({"caller": caller} if caller else {})
