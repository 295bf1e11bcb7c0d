"""Unit of work: one session, its repositories, and a transaction that rolls back unless committed."""

from __future__ import annotations

from typing import Self

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from persistence.audit import AuditRepository
from persistence.defects import DefectRepository
from persistence.repositories import NotificationRepository, RunRepository, StageRepository, VerdictRepository
from persistence.waivers import WaiverRepository


class UnitOfWork:
    """``with UnitOfWork(engine) as uow: ...; uow.commit()``: nothing is kept without ``commit()``."""

    def __init__(self, engine: Engine) -> None:
        # SQLite: take the write lock at BEGIN (see persistence.engine); other dialects ignore the option
        self._sessions = sessionmaker(bind=engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)

    def __enter__(self) -> Self:
        self.session: Session = self._sessions()
        self.runs = RunRepository(self.session)
        self.stages = StageRepository(self.session)
        self.verdicts = VerdictRepository(self.session)
        self.defects = DefectRepository(self.session)
        self.notifications = NotificationRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.waivers = WaiverRepository(self.session, self.audit)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.rollback()
        self.session.close()

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()
