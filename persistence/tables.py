"""The gate database's tables. Natural keys (unique constraints) make every write an idempotent upsert."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from releasegate.domain.defect_lifecycle import DefectState

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

JSONType = JSON().with_variant(JSONB(), "postgresql")

STAGE_STATUSES = ("passed", "failed", "error")
TEST_OUTCOMES = ("passed", "failed", "error", "skipped", "flaky")
DEFECT_STATES = tuple(state.value for state in DefectState)  # new, recurring, fixed, reopened, waived
NOTIFICATION_STATUSES = ("sent", "written", "failed")


def _one_of(column: str, values: tuple[str, ...]) -> CheckConstraint:
    return CheckConstraint(f"{column} IN ({', '.join(repr(v) for v in values)})", name=column)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware in and out, stored as UTC on every backend (SQLite keeps no offset of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> datetime | None:
        if value is None:
            return None
        moment: datetime = datetime.fromisoformat(value) if isinstance(value, str) else value
        moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        return moment.replace(tzinfo=None) if dialect.name == "sqlite" else moment

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    if TYPE_CHECKING:
        # every model below names a __tablename__, so declarative gives it a Table (typed as any FromClause)
        __table__: ClassVar[Table]


metadata = Base.metadata


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.run_id", ondelete="CASCADE")


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (Index("ix_runs_service_version_started_at", "service", "version", "started_at"),)

    run_id: Mapped[str] = mapped_column(String(250), primary_key=True)
    service: Mapped[str] = mapped_column(String(200))
    version: Mapped[str] = mapped_column(String(200))
    policy_path: Mapped[str] = mapped_column(Text, default="")
    policy_digest: Mapped[str] = mapped_column(String(128), default="")
    evidence_dir: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(32), default="running")
    airflow_dag_run_id: Mapped[str | None] = mapped_column(String(250))
    decision: Mapped[str | None] = mapped_column(String(16))


class StageResultRow(Base):
    __tablename__ = "stage_results"
    __table_args__ = (UniqueConstraint("run_id", "stage"), _one_of("status", STAGE_STATUSES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250), _run_fk())
    stage: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))
    required: Mapped[bool] = mapped_column(Boolean, default=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    summary: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text)
    evidence_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    metrics: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    artifacts: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class TestCaseRow(Base):
    __tablename__ = "test_cases"
    __table_args__ = (UniqueConstraint("run_id", "suite", "node_id"), _one_of("outcome", TEST_OUTCOMES))
    __test__ = False  # not a pytest class

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250), _run_fk())
    suite: Mapped[str] = mapped_column(String(200))
    node_id: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(16))
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    message: Mapped[str] = mapped_column(Text, default="")


class FindingRow(Base):
    __tablename__ = "findings"
    __table_args__ = (UniqueConstraint("run_id", "fingerprint"), Index("ix_findings_run_id_stage", "run_id", "stage"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250), _run_fk())
    fingerprint: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(Text)
    severity: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text, default="")
    location: Mapped[str] = mapped_column(Text, default="")
    evidence: Mapped[str] = mapped_column(Text, default="")
    blocking: Mapped[bool] = mapped_column(Boolean, default=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class DefectRow(Base):
    """One row per service + fingerprint, carried across runs through its lifecycle."""

    __tablename__ = "defects"
    __table_args__ = (UniqueConstraint("service", "fingerprint"), _one_of("state", DEFECT_STATES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(128))
    stage: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(64))
    rule: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text, default="")
    severity: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    previous_state: Mapped[str | None] = mapped_column(String(16))
    first_run_id: Mapped[str] = mapped_column(String(250))
    last_run_id: Mapped[str] = mapped_column(String(250))       # last run that saw it
    changed_run_id: Mapped[str] = mapped_column(String(250))    # run that caused the last transition
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    remediation: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class VerdictRow(Base):
    __tablename__ = "verdicts"

    run_id: Mapped[str] = mapped_column(String(250), _run_fk(), primary_key=True)
    decision: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    decided_at: Mapped[datetime] = mapped_column(UTCDateTime)
    policy_digest: Mapped[str] = mapped_column(String(128), default="")
    tool_versions: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    manifest_sha256: Mapped[str] = mapped_column(String(64), default="")
    report_path: Mapped[str] = mapped_column(Text, default="")


class NotificationRow(Base):
    """The outbox: what was sent on which channel, how often, and what came back."""

    __tablename__ = "notifications"
    __table_args__ = (UniqueConstraint("run_id", "channel"), _one_of("status", NOTIFICATION_STATUSES))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250), _run_fk())
    channel: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # the Slack message the notification became: re-runs update it in place (chat.update) or post nothing
    message_ts: Mapped[str | None] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(32))
    shown_decision: Mapped[str | None] = mapped_column(String(16))   # the decision that message shows


class LoadSampleRow(Base):
    """What a later run's baseline comparison needs of this run's load test: per percentile, the overall value
    and the per-interval values Locust recorded (docs/decisions/0016)."""

    __tablename__ = "load_samples"
    __table_args__ = (UniqueConstraint("run_id", "metric"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(250), _run_fk())
    metric: Mapped[str] = mapped_column(String(64))
    value: Mapped[float] = mapped_column(Float)
    samples: Mapped[list[Any]] = mapped_column(JSONType, default=list)


class WaiverRow(Base):
    """A documented exception: one finding of one service may ship until ``expires_on`` (exclusive)."""

    __tablename__ = "waivers"
    __table_args__ = (
        Index("ix_waivers_service_fingerprint", "service", "fingerprint"),
        CheckConstraint("lower(trim(approver)) <> lower(trim(requested_by))", name="distinct_approver"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    approver: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_on: Mapped[date] = mapped_column(Date)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revoke_reason: Mapped[str | None] = mapped_column(Text)


class WaiverRequestRow(Base):
    """A waiver someone asked for and nobody has approved yet (``pending``), or what became of it: ``granted`` (the
    waiver it became), ``rejected``. The approval step of a NO_GO run whose blockers all have one grants them."""

    __tablename__ = "waiver_requests"
    __table_args__ = (Index("ix_waiver_requests_service_status", "service", "status"),
                      _one_of("status", ("pending", "granted", "rejected")))

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    service: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    requested_by: Mapped[str] = mapped_column(String(200))
    expires_on: Mapped[date] = mapped_column(Date)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    waiver_id: Mapped[int | None] = mapped_column(ForeignKey("waivers.id"))


class AuditEventRow(Base):
    """Append-only; each row's ``hash`` covers its content and the previous row's hash."""

    __tablename__ = "audit_events"
    __table_args__ = (UniqueConstraint("event_key"), {"sqlite_autoincrement": True})  # ids never reused

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(Text)
    run_id: Mapped[str | None] = mapped_column(String(250))  # text, not a foreign key: runs may be purged
    actor: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    event_key: Mapped[str | None] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHeadRow(Base):
    """The chain's last event, updated with every append: removing events from the end shows here."""

    __tablename__ = "audit_head"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_id: Mapped[int] = mapped_column(Integer)
    hash: Mapped[str] = mapped_column(String(64))
