"""Unit of work: one session, its repositories, and a transaction that rolls back unless committed.

``in_transaction`` runs a unit of work again when the database dropped the connection or could not be
reached (a restarted server, a terminated backend, a failover): a few attempts with a growing pause, then
the error. Every write of the gate is an upsert on a natural key and every audit event carries a key, so
running the same unit of work twice writes the same rows, even when the first commit reached the server
and only its answer was lost.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Self, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from persistence.audit import AuditRepository
from persistence.defects import DefectRepository
from persistence.load_samples import LoadSampleRepository
from persistence.repositories import NotificationRepository, RunRepository, StageRepository, VerdictRepository
from persistence.waivers import WaiverRepository, WaiverRequests

log = logging.getLogger("releasegate")
T = TypeVar("T")
RETRY_PAUSES_S: Sequence[float] = (0.25, 0.75, 1.5)   # pauses between attempts: 4 attempts in ~2.5 s


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()``: nothing is kept without ``commit()``.

    ``scrub``: applied to every audit event's subject, payload, actor and key before it is appended (the
    gate passes its redaction, so the append-only trail never holds a secret that would need scrubbing).
    """

    def __init__(self, engine: Engine, scrub: Callable[[Any], Any] | None = None) -> None:
        # SQLite: take the write lock at BEGIN (see persistence.engine); other dialects ignore the option
        self._sessions = sessionmaker(bind=engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)
        self._scrub = scrub

    def __enter__(self) -> Self:
        self.session: Session = self._sessions()
        self.runs = RunRepository(self.session)
        self.stages = StageRepository(self.session)
        self.verdicts = VerdictRepository(self.session)
        self.defects = DefectRepository(self.session)
        self.notifications = NotificationRepository(self.session)
        self.load_samples = LoadSampleRepository(self.session)
        self.audit = AuditRepository(self.session) if self._scrub is None else ScrubbedAudit(self.session, self._scrub)
        self.waivers = WaiverRepository(self.session, self.audit)
        self.waiver_requests = WaiverRequests(self.session, self.audit, self.waivers)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


class ScrubbedAudit(AuditRepository):
    """The audit repository with every appended text passed through ``scrub`` first."""

    def __init__(self, session: Session, scrub: Callable[[Any], Any]) -> None:
        super().__init__(session)
        self._scrub = scrub

    def append_many(self, events: list[dict[str, Any]], redacted: bool = False) -> list[dict[str, Any]]:
        if redacted:  # the gate's audit recorder redacted them before it derived their keys
            return super().append_many(events, redacted=True)
        texts = self._scrub([[e["subject"], e["payload"], e.get("actor"), e.get("key")] for e in events])  # one pass
        return super().append_many([{**e, "subject": subject, "payload": payload, "actor": actor, "key": key}
                                    for e, (subject, payload, actor, key) in zip(events, texts, strict=True)])


def is_transient(exc: BaseException) -> bool:
    """A fault of the connection rather than of the statement: worth the same unit of work again."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError))


def in_transaction(open_uow: Callable[[], UnitOfWork], work: Callable[[UnitOfWork], T],
                   pauses: Sequence[float] | None = None, what: str = "database write") -> T:
    """``work(uow)`` then commit; on a transient fault (see ``is_transient``) the whole unit of work again,
    after each pause in turn; the last fault is raised. ``open_uow`` is called per attempt, so an engine that
    could not connect at first is asked again."""
    pauses = RETRY_PAUSES_S if pauses is None else pauses
    for attempt in range(len(pauses) + 1):
        try:
            with open_uow() as uow:
                value = work(uow)
                uow.commit()
                return value
        except Exception as exc:
            if attempt >= len(pauses) or not is_transient(exc):
                raise
            log.warning("%s: %s (attempt %d of %d); trying again in %.2g s", what, first_line(exc), attempt + 1,
                        len(pauses) + 1, pauses[attempt])
            time.sleep(pauses[attempt])
    raise AssertionError("unreachable")


def first_line(exc: BaseException) -> str:
    """`OperationalError: terminating connection due to administrator command` without SQL or background."""
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
