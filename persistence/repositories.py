"""Repositories: plain dicts in, plain dicts out; every write an upsert on a natural key."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, Result, delete, select, update
from sqlalchemy.orm import Session

from persistence.bulk import insert_rows
from persistence.tables import (
    FindingRow,
    NotificationRow,
    Run,
    StageResultRow,
    TestCaseRow,
    VerdictRow,
    utcnow,
)
from persistence.upsert import upsert

_CHUNK = 500
NO_CHANNEL = "(none)"   # the channel recorded when a policy names no Slack channel: nothing to deliver
MESSAGE_FIELDS = ("message_ts", "channel_id", "shown_decision")   # the Slack message a notification became
RUN_ALIASES = {"started": "started_at", "finished": "finished_at"}
FINDING_FIELDS = ("kind", "rule", "severity", "title", "location", "evidence", "fingerprint", "blocking", "data")


def _plain(value: Any) -> Any:
    """An enum's value (``str`` enums would otherwise print as ``Status.passed``); anything else as is."""
    return getattr(value, "value", value)


def _dicts(result: Result[Any]) -> list[dict[str, Any]]:
    return [dict(row) for row in result.mappings()]


def _rowcount(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE matched (SQLAlchemy types ``Session.execute`` as any ``Result``)."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"expected the CursorResult of an UPDATE or DELETE, got {type(result).__name__}")
    return result.rowcount


def _chunks(rows: list[Any]) -> Iterable[list[Any]]:
    return (rows[i:i + _CHUNK] for i in range(0, len(rows), _CHUNK))


class RunRepository:
    columns = frozenset(c.name for c in Run.__table__.columns)

    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert(self, run: dict[str, Any]) -> None:
        """Write the run; the columns ``run`` carries overwrite an existing row with the same run_id."""
        row = {RUN_ALIASES.get(k, k): _plain(v) for k, v in run.items()}
        upsert(self.session, Run.__table__, {k: v for k, v in row.items() if k in self.columns}, ["run_id"])

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = _dicts(self.session.execute(select(Run.__table__).where(Run.run_id == run_id)))
        return rows[0] if rows else None

    def finish(self, run_id: str, status: str, decision: str | None, finished_at: datetime) -> None:
        result = self.session.execute(update(Run).where(Run.run_id == run_id).values(
            status=_plain(status), decision=_plain(decision), finished_at=finished_at))
        if _rowcount(result) == 0:
            raise LookupError(f"run {run_id!r} is not recorded — call runs.upsert() when the run starts")

    def evidence_dirs(self) -> list[str]:
        """The evidence folder of every recorded run (those that have one)."""
        return [p for p in self.session.scalars(select(Run.evidence_dir).where(Run.evidence_dir != "")) if p]

    def latest(self, service: str | None = None, version: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
        query = select(Run.__table__).order_by(Run.started_at.desc(), Run.run_id.desc()).limit(limit)
        if service is not None:
            query = query.where(Run.service == service)
        if version is not None:
            query = query.where(Run.version == version)
        return _dicts(self.session.execute(query))


class StageRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert(self, run_id: str, stage: dict[str, Any], cases: Iterable[Sequence[Any]] = ()) -> None:
        """Write a StageResult dump, its findings and its test cases; a rerun replaces the stage's rows.

        ``cases``: more test cases as (node_id, outcome, duration_s, attempts, message) rows, streamed (a large
        suite's passing cases, read from its spool file); the dump's own ``test_cases`` win over them."""
        name = stage["stage"]
        upsert(self.session, StageResultRow.__table__, _stage_row(run_id, stage), ["run_id", "stage"])
        findings = {f["fingerprint"]: f for f in stage.get("findings", [])}  # one row per fingerprint, last wins
        self._delete_findings(run_id, name, list(findings))
        insert_rows(self.session, FindingRow.__table__, FINDING_COLUMNS[2:], map(_finding_values, findings.values()),
                    {"run_id": run_id, "stage": name})  # the run and stage once, not in every row
        self.session.execute(delete(TestCaseRow).where(TestCaseRow.run_id == run_id, TestCaseRow.suite == name))
        insert_rows(self.session, TestCaseRow.__table__, CASE_COLUMNS[2:], _case_rows(stage, cases),
                    {"run_id": run_id, "suite": name})

    def _delete_findings(self, run_id: str, stage: str, fingerprints: list[str]) -> None:
        """The stage's earlier rows, and rows of another stage with a fingerprint this one now holds (those are
        few: the other stages' fingerprints are read and matched here, rather than sending this stage's)."""
        self.session.execute(delete(FindingRow).where(FindingRow.run_id == run_id, FindingRow.stage == stage))
        if not fingerprints:
            return
        others = self.session.scalars(select(FindingRow.fingerprint).where(FindingRow.run_id == run_id,
                                                                           FindingRow.stage != stage))
        taken = set(others).intersection(fingerprints)
        for chunk in _chunks(sorted(taken)):
            self.session.execute(delete(FindingRow).where(FindingRow.run_id == run_id,
                                                          FindingRow.fingerprint.in_(chunk)))

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        """The run's stages, each shaped like ``StageResult.model_dump()`` (findings included)."""
        stages = _dicts(self.session.execute(select(StageResultRow.__table__).where(StageResultRow.run_id == run_id)
                                             .order_by(StageResultRow.started_at, StageResultRow.stage)))
        findings: dict[str, list[dict[str, Any]]] = {}
        for finding in self.findings(run_id):
            findings.setdefault(finding.pop("stage"), []).append(finding)
        return [_stage_dict(row, findings.get(row["stage"], [])) for row in stages]

    def findings(self, run_id: str) -> list[dict[str, Any]]:
        """The run's findings: Finding fields plus ``stage``."""
        query = select(FindingRow.stage, *(getattr(FindingRow, f) for f in FINDING_FIELDS)).where(
            FindingRow.run_id == run_id).order_by(FindingRow.stage, FindingRow.fingerprint)
        return _dicts(self.session.execute(query))

    def test_cases(self, run_id: str, suite: str | None = None) -> list[dict[str, Any]]:
        query = select(TestCaseRow.suite, TestCaseRow.node_id, TestCaseRow.outcome, TestCaseRow.duration_s,
                       TestCaseRow.attempts, TestCaseRow.message).where(TestCaseRow.run_id == run_id)
        if suite is not None:
            query = query.where(TestCaseRow.suite == suite)
        return _dicts(self.session.execute(query.order_by(TestCaseRow.suite, TestCaseRow.node_id)))


def _stage_row(run_id: str, stage: dict[str, Any]) -> dict[str, Any]:
    return {"run_id": run_id, "stage": stage["stage"], "kind": stage["kind"], "status": _plain(stage["status"]),
            "required": stage.get("required", True), "started_at": stage["started"],
            "finished_at": stage["finished"], "attempts": stage.get("attempts", 1),
            "summary": stage.get("summary", ""), "error": stage.get("error"),
            "evidence_empty": stage.get("evidence_empty", False), "metrics": stage.get("metrics", []),
            "artifacts": stage.get("artifacts", [])}


def _stage_dict(row: dict[str, Any], findings: list[dict[str, Any]]) -> dict[str, Any]:
    return {"stage": row["stage"], "kind": row["kind"], "status": row["status"], "required": row["required"],
            "started": row["started_at"], "finished": row["finished_at"], "attempts": row["attempts"],
            "summary": row["summary"], "error": row["error"], "metrics": row["metrics"], "findings": findings,
            "artifacts": row["artifacts"], "evidence_empty": row["evidence_empty"]}


FINDING_COLUMNS = ("run_id", "stage", "fingerprint", "kind", "rule", "severity", "title", "location", "evidence",
                   "blocking", "data")
CASE_COLUMNS = ("run_id", "suite", "node_id", "outcome", "duration_s", "attempts", "message")


def _finding_row(run_id: str, stage: str, finding: dict[str, Any]) -> tuple[Any, ...]:
    """A finding's row, in the order of FINDING_COLUMNS."""
    return (run_id, stage, *_finding_values(finding))


def _finding_values(finding: dict[str, Any]) -> tuple[Any, ...]:
    """A finding's row past its run and stage (FINDING_COLUMNS[2:])."""
    return (finding["fingerprint"], finding["kind"], finding["rule"], _plain(finding["severity"]),
            finding.get("title", ""), finding.get("location", ""), finding.get("evidence", ""),
            finding.get("blocking", True), finding.get("data", {}))


def _case_rows(stage: dict[str, Any], streamed: Iterable[Sequence[Any]]) -> Iterator[Sequence[Any]]:
    """The dump's test cases (one per node id, last wins), then the streamed ones it does not hold: each as
    CASE_COLUMNS[2:] (past the run and suite)."""
    held = {c["node_id"]: c for c in stage.get("test_cases", [])}
    for case in held.values():
        yield (case["node_id"], _plain(case["outcome"]), case.get("duration_s", 0.0), case.get("attempts", 1),
               case.get("message", ""))
    if not held:
        yield from streamed  # already (node_id, outcome, duration_s, attempts, message)
        return
    for row in streamed:
        if row[0] not in held:
            yield row


class VerdictRepository:
    fields = ("decision", "reasons", "decided_at", "policy_digest", "tool_versions", "manifest_sha256", "report_path")

    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert(self, run_id: str, verdict: dict[str, Any]) -> None:
        """Write a Verdict dump (plus tool_versions, manifest_sha256, report_path when given)."""
        row = {"run_id": run_id, **{k: _plain(verdict[k]) for k in self.fields if k in verdict}}
        upsert(self.session, VerdictRow.__table__, row, ["run_id"])

    def get(self, run_id: str) -> dict[str, Any] | None:
        rows = _dicts(self.session.execute(select(VerdictRow.__table__).where(VerdictRow.run_id == run_id)))
        return rows[0] if rows else None


class NotificationRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def upsert(self, run_id: str, channel: str, payload: dict[str, Any], status: str, attempts: int,
               response: dict[str, Any] | None = None, message: dict[str, str | None] | None = None) -> None:
        """``message``: the Slack message the notification is (``message_ts``, ``channel_id``,
        ``shown_decision``); None leaves what the row holds."""
        row = {"run_id": run_id, "channel": channel, "payload": payload, "status": _plain(status),
               "attempts": attempts, "response": response, "updated_at": utcnow(),
               **{k: v for k, v in (message or {}).items() if k in MESSAGE_FIELDS}}
        upsert(self.session, NotificationRow.__table__, row, ["run_id", "channel"])

    def get(self, run_id: str, channel: str) -> dict[str, Any] | None:
        query = select(NotificationRow.__table__).where(NotificationRow.run_id == run_id,
                                                        NotificationRow.channel == channel)
        rows = _dicts(self.session.execute(query))
        return rows[0] if rows else None

    def for_run(self, run_id: str) -> list[dict[str, Any]]:
        query = select(NotificationRow.__table__).where(NotificationRow.run_id == run_id)
        return _dicts(self.session.execute(query.order_by(NotificationRow.channel)))

    # --- the outbox: notifications that were not delivered are sent again later ---------------------------------
    #
    # A retry leases its row first: ``claim`` moves ``updated_at`` to the end of the lease, but only if
    # nobody changed the row since it was read (same attempts) and no other lease is running, so two
    # processes never send the same notification at once; ``pending`` leaves leased rows out. ``settle``
    # records the outcome and ends the lease; a retry that died is pending again when its lease ends.

    def pending(self, at: datetime, service: str | None = None, exclude_run: str | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
        """Notifications to a channel that were not delivered (status other than sent), oldest first, with
        the run's ``service``; rows leased by a retry in flight (``updated_at`` after ``at``) are left out."""
        table = NotificationRow.__table__
        query = (select(table, Run.service).join(Run, Run.run_id == NotificationRow.run_id)
                 .where(NotificationRow.status != "sent", NotificationRow.channel != NO_CHANNEL,
                        NotificationRow.updated_at <= at)
                 .order_by(NotificationRow.updated_at, NotificationRow.id).limit(limit))
        if service is not None:
            query = query.where(Run.service == service)
        if exclude_run is not None:
            query = query.where(NotificationRow.run_id != exclude_run)
        return _dicts(self.session.execute(query))

    def claim(self, notification: dict[str, Any], at: datetime, lease_until: datetime) -> bool:
        """Lease ``notification`` (as ``pending`` returned it) for one retry; False when another process has it."""
        result = self.session.execute(update(NotificationRow).where(
            NotificationRow.id == notification["id"], NotificationRow.status != "sent",
            NotificationRow.attempts == notification["attempts"], NotificationRow.updated_at <= at,
        ).values(updated_at=lease_until))
        return _rowcount(result) == 1

    def settle(self, notification_id: int, status: str, attempts: int, response: dict[str, Any] | None,
               at: datetime, message: dict[str, str | None] | None = None) -> None:
        """Record a retry's outcome (and the Slack message it made, when ``message``) and end its lease."""
        fields = {k: v for k, v in (message or {}).items() if k in MESSAGE_FIELDS}
        self.session.execute(update(NotificationRow).where(NotificationRow.id == notification_id).values(
            status=_plain(status), attempts=attempts, response=response, updated_at=at, **fields))
