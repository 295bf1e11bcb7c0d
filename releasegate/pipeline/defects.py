"""A run's findings become defects across runs (new, recurring, fixed, reopened, waived), written with their audit
events in one unit of work; the waivers in force when the run is decided."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime

from releasegate.context import RunContext
from releasegate.domain.models import AppliedWaiver, DefectChange, StageResult, Status
from releasegate.records import store
from releasegate.records.audit import record_many, transition_events

log = logging.getLogger("releasegate")



def active_waivers(service: str, at: datetime) -> dict[str, AppliedWaiver]:
    """Waivers in force at `at`, by fingerprint (an expired or revoked one no longer counts)."""
    rows = store.transaction(lambda uow: uow.waivers.active(service, at), what="reading waivers")
    return {w["fingerprint"]: AppliedWaiver(id=w["id"], fingerprint=w["fingerprint"], reason=w["reason"],
                                            approver=w["approver"], requested_by=w["requested_by"],
                                            expires_on=str(w["expires_on"])) for w in rows}


def record_defects(ctx: RunContext, results: list[StageResult], seen_at: datetime,
                    waived: frozenset[str]) -> tuple[list[dict], list[DefectChange]]:
    findings = [{**f.model_dump(mode="json"), "stage": r.stage} for r in results for f in r.findings]
    completed = {r.stage for r in results if r.status is not Status.error and not r.evidence_empty}

    def work(uow) -> tuple[list[dict], list[dict]]:
        # observed at the run's start (persistence/defects.py): a late retry of an older run fixes nothing a newer saw
        transitions, defects = uow.defects.record(ctx.service, ctx.run_id, findings, completed, ctx.started, waived)
        # last, in one batch: the audit chain's lock is held only from here to the commit
        stage_of = {d["fingerprint"]: d["stage"] for d in defects}
        record_many(uow, transition_events(ctx.service, transitions, stage_of), seen_at, ctx.run_id,
                    keep=frozenset({"fingerprints"}))
        return defects, transitions

    defects, transitions = store.transaction(work, what="recording defects")
    log_transitions(transitions)
    return defects, _changes_in_run(ctx.run_id, defects, {f["fingerprint"] for f in findings})


def log_transitions(transitions: list[dict], shown: int = 20) -> None:
    """Each defect that moved, up to ``shown`` of them, then a count per move (a large scan's log stays readable)."""
    for change in transitions[:shown]:
        log.info("defect %s: %s -> %s", change["fingerprint"][:12], change.get("from") or "-", change["to"])
    if len(transitions) > shown:
        moves = Counter(f"{c.get('from') or '-'} -> {c['to']}" for c in transitions)
        log.info("defects: %d moved in all (%s); every one is in the report and the audit trail", len(transitions),
                 ", ".join(f"{move}: {n}" for move, n in sorted(moves.items())))


def _changes_in_run(run_id: str, defects: list[dict], seen: set[str]) -> list[DefectChange]:
    """Each defect this run saw (new, recurring, reopened, waived) or fixed."""
    def touched(d: dict) -> bool:
        return d["fingerprint"] in seen or (d["state"] == "fixed" and d.get("changed_run_id") == run_id)

    return [DefectChange(fingerprint=d["fingerprint"], title=d["title"], stage=d.get("stage") or "",
                         severity=d.get("severity") or "", state=d["state"], previous=d.get("previous_state"))
            for d in sorted(defects, key=lambda d: d["fingerprint"]) if touched(d)]
