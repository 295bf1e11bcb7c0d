"""Waivers: documented exceptions that let one finding of one service ship until a date, stored and loaded.

The rules are the core's ``releasegate.domain.waiver_rules``: what a waiver must satisfy before it is stored (distinct
requester and approver in canonical form, an expiry within the policy's limit), when it applies (``applies``,
spelled in SQL here as ``live``), one live waiver per finding, a revocation that is final. Granting and revoking
each append an audit event in the same transaction. The table keeps a guarantee of its own: approver and
requester differ. A waiver may first be requested (``waiver_requests``: pending until an approver grants it,
e.g. in the DAG's approval step, or rejects it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, insert, select, update
from sqlalchemy.orm import Session

from persistence.audit import AuditRepository
from persistence.repositories import _rowcount
from persistence.tables import WaiverRequestRow, WaiverRow
from releasegate.domain.waiver_rules import check_no_overlap, check_not_revoked, status_at, utc_day

Rows = list[dict[str, Any]]
_WAIVER = WaiverRow.__table__
_REQUEST = WaiverRequestRow.__table__


def live(at: datetime) -> ColumnElement[bool]:
    """``waiver_rules.applies`` as a SQL condition on the waivers table: not revoked, expiring after ``at``'s day."""
    return and_(_WAIVER.c.revoked_at.is_(None), _WAIVER.c.expires_on > utc_day(at))


class WaiverRepository:
    def __init__(self, session: Session, audit: AuditRepository) -> None:
        self.session = session
        self.audit = audit

    def grant(self, service: str, fingerprint: str, reason: str, requested_by: str, approver: str,
              expires_on: date, at: datetime, caller: dict[str, str] | None = None) -> dict[str, Any]:
        """Store a waiver the core's rules accepted; ``caller`` (who ran the command) goes into the audit event."""
        check_no_overlap(self.active(service, at), service, fingerprint)
        row = {"service": service, "fingerprint": fingerprint, "reason": reason, "requested_by": requested_by,
               "approver": approver, "granted_at": at, "expires_on": expires_on}
        waiver = dict(self.session.execute(insert(_WAIVER).values(row).returning(*_WAIVER.c)).mappings().one())
        self.audit.append("waiver.granted", f"{service}:{fingerprint}", _audit_payload(waiver, caller), at,
                          actor=waiver["approver"])
        return waiver | {"status": status_at(waiver, at)}

    def revoke(self, waiver_id: int, by: str, reason: str, at: datetime,
               caller: dict[str, str] | None = None) -> dict[str, Any]:
        """Stop a waiver applying from ``at``; ``by`` and ``reason`` as the core's rules accepted them."""
        waiver = self.get(waiver_id)
        if waiver is None:
            raise LookupError(f"no waiver #{waiver_id} — `releasegate waivers list` shows the ids")
        check_not_revoked(waiver)
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
        """The service's waivers that apply at ``at`` (``waiver_rules.applies``)."""
        query = select(_WAIVER).where(_WAIVER.c.service == service, live(at)).order_by(_WAIVER.c.id)
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


class WaiverRequests:
    """Waivers asked for, waiting for an approver (the rules are the core's ``waiver_rules.check_request``)."""

    def __init__(self, session: Session, audit: AuditRepository, waivers: WaiverRepository) -> None:
        self.session, self.audit, self.waivers = session, audit, waivers

    def request(self, service: str, fingerprint: str, reason: str, requested_by: str, expires_on: date,
                at: datetime, caller: dict[str, str] | None = None) -> dict[str, Any]:
        for waiting in self.pending(service):
            if waiting["fingerprint"] == fingerprint:
                raise ValueError(f"request #{waiting['id']} already asks for a waiver of {fingerprint[:12]} of "
                                 f"{service} (by {waiting['requested_by']}): it waits for an approver")
        row = {"service": service, "fingerprint": fingerprint, "reason": reason, "requested_by": requested_by,
               "expires_on": expires_on, "requested_at": at, "status": "pending"}
        request = dict(self.session.execute(insert(_REQUEST).values(row).returning(*_REQUEST.c)).mappings().one())
        self.audit.append("waiver.requested", f"{service}:{fingerprint}",
                          {"request_id": request["id"], "reason": reason, "requested_by": requested_by,
                           "expires_on": expires_on} | ({"caller": caller} if caller else {}), at, actor=requested_by)
        return request

    def pending(self, service: str | None = None) -> Rows:
        query = select(_REQUEST).where(_REQUEST.c.status == "pending").order_by(_REQUEST.c.id)
        if service is not None:
            query = query.where(_REQUEST.c.service == service)
        return [dict(r) for r in self.session.execute(query).mappings()]

    def grant(self, request: dict[str, Any], approver: str, at: datetime,
              caller: dict[str, str] | None = None) -> dict[str, Any]:
        """The request becomes a waiver approved by ``approver`` (the core's rules checked them both)."""
        waiver = self.waivers.grant(request["service"], request["fingerprint"], request["reason"],
                                    request["requested_by"], approver, request["expires_on"], at,
                                    caller=(caller or {}) | {"request_id": str(request["id"])})
        self._decide(request["id"], "granted", approver, at, waiver["id"])
        return waiver

    def fulfil(self, waiver: dict[str, Any], at: datetime) -> list[int]:
        """Pending requests for the finding a waiver now covers (granted another way, e.g. ``waive``) become
        ``granted`` by it; their ids."""
        ids = [r["id"] for r in self.pending(waiver["service"]) if r["fingerprint"] == waiver["fingerprint"]]
        for request_id in ids:
            self._decide(request_id, "granted", waiver["approver"], at, waiver["id"])
        return ids

    def reject(self, request: dict[str, Any], by: str, at: datetime) -> None:
        self._decide(request["id"], "rejected", by, at, None)
        self.audit.append("waiver.request_rejected", f"{request['service']}:{request['fingerprint']}",
                          {"request_id": request["id"], "by": by}, at, actor=by)

    def _decide(self, request_id: int, status: str, by: str, at: datetime, waiver_id: int | None) -> None:
        result = self.session.execute(update(_REQUEST).where(_REQUEST.c.id == request_id,
                                                             _REQUEST.c.status == "pending").values(
            status=status, decided_by=by, decided_at=at, waiver_id=waiver_id))
        if not _rowcount(result):
            raise ValueError(f"waiver request #{request_id} is no longer pending")


def _audit_payload(waiver: dict[str, Any], caller: dict[str, str] | None = None) -> dict[str, Any]:
    keys = ("reason", "requested_by", "approver", "expires_on", "revoked_at", "revoked_by", "revoke_reason")
    payload = {"waiver_id": waiver["id"], **{k: waiver[k] for k in keys if waiver.get(k) is not None}}
    return payload | ({"caller": caller} if caller else {})
