"""A person's answer to a run the gate could not pass, as the DAG's approval step records it: an approval by
someone other than the person who triggered the run accepts the missing evidence of an INCONCLUSIVE run, or grants
the waivers requested for every blocker of a NO_GO, and the run is concluded again; a self-approval, an approval
that names nobody, a run nobody is known to have triggered, a rejection and a timeout change nothing. Every answer
is in the audit trail, naming the Airflow user."""

from __future__ import annotations

import json
from pathlib import Path

from releasegate import pipeline
from releasegate.pipeline.approval import needs_approval, request_text, settle
from releasegate.records import store
from tests.support.faults import tiny_policy


def inconclusive_run(tmp_path: Path, blocking: bool = False):
    """A run of a tiny service whose second suite points at a folder that does not exist (pytest exits 4: the
    gate cannot decide); with ``blocking``, a third suite fails a test (what still blocks after an approval)."""
    suites = [{"name": "unit", "paths": ["tests"]}, {"name": "gone", "paths": ["no-such-folder"]}]
    if blocking:
        suites.append({"name": "red", "paths": ["red"]})
    policy = tiny_policy(tmp_path, environment=False, extra={"suites": suites})
    if blocking:
        (tmp_path / "tiny" / "1.0.0" / "red").mkdir()
        (tmp_path / "tiny" / "1.0.0" / "red" / "test_red.py").write_text("def test_red():\n    assert 1 == 2\n")
    ctx = pipeline.begin(policy, "1.0.0", run_id=f"release_gate__manual-{tmp_path.name}")
    for name in pipeline.stage_names(pipeline.policy_of(ctx)):
        pipeline.run_stage(ctx, name, None)
    pipeline.finish(ctx, None)
    return ctx, pipeline.conclude(ctx).as_json()


def answer(choice: str, user: str) -> dict:
    return {"chosen_options": [choice], "params_input": {},
            "responded_by_user": {"id": user, "name": user}, "responded_at": "2026-12-01T10:00:00+00:00"}


def audit(run_id: str) -> list[tuple[str, str | None, dict]]:
    with store.unit_of_work() as uow:
        events = uow.audit.events(run_id=run_id)
        assert uow.audit.verify()["ok"]
    return [(e["kind"], e["actor"], e["payload"]) for e in events if e["kind"].startswith("run.approval")
            or e["kind"] == "run.approved"]


def test_an_approval_by_another_user_turns_the_run_to_go_and_names_them(tmp_path):
    ctx, outcome = inconclusive_run(tmp_path)
    assert outcome["decision"] == "INCONCLUSIVE" and needs_approval(outcome) == "inconclusive"
    subject, body = request_text(outcome, "alice")
    assert "INCONCLUSIVE" in subject and "`pytest[gone]`" in body and "alice" in body

    what, why = settle(ctx, outcome, answer("Approve", "bob"), requested_by="alice")
    again = pipeline.conclude(ctx)

    assert (what, why) == ("approved", "bob accepted 1 missing piece(s) of evidence")
    assert again.verdict.decision.value == "GO"
    assert again.verdict.approval.approver == "bob" and again.verdict.approval.requested_by == "alice"
    saved = json.loads((ctx.evidence / "verdict.json").read_text())
    assert saved["decision"] == "GO" and saved["approval"]["approver"] == "bob"
    assert "accepted by bob" in (ctx.evidence / "report.html").read_text(encoding="utf-8")
    [(kind, actor, payload)] = audit(ctx.run_id)
    assert (kind, actor, payload["requested_by"], payload["decision_before"]) == ("run.approved", "bob", "alice",
                                                                                  "INCONCLUSIVE")
    # the approval is this service's and version's: a run id reused for another version is not approved
    from releasegate.pipeline.approval import run_approval

    assert run_approval(ctx) is not None and run_approval(ctx.model_copy(update={"version": "2.0.0"})) is None


def test_an_approval_accepts_missing_evidence_never_a_failing_test(tmp_path):
    ctx, outcome = inconclusive_run(tmp_path, blocking=True)
    assert outcome["decision"] == "INCONCLUSIVE"

    assert settle(ctx, outcome, answer("Approve", "bob"), requested_by="alice")[0] == "approved"
    again = pipeline.conclude(ctx)

    assert again.verdict.decision.value == "NO_GO"
    assert [r.stage for r in again.verdict.reasons if r.severity.value != "low"] == ["pytest[red]"]


REFUSED_OR_REJECTED = [
    (answer("Approve", "Alice"), "alice", "refused", "Alice triggered this run and cannot approve it"),
    (answer("Approve", "bob"), None, "refused", "nobody is recorded as having triggered this run"),
    (answer("Approve", ""), "alice", "refused", "the approval names no Airflow user"),
    (answer("Reject", "bob"), "alice", "rejected", "bob rejected it"),
    (None, "alice", "timed_out", "no answer before the approval step's deadline"),
    ({"chosen_options": ["Reject"], "responded_by_user": None}, "carol", "timed_out", "a timeout rejects"),
]


def test_nothing_but_an_approval_by_someone_else_changes_the_verdict(tmp_path):
    ctx, outcome = inconclusive_run(tmp_path)

    for n, (response, requested_by, what, why) in enumerate(REFUSED_OR_REJECTED, start=1):
        got, reason = settle(ctx, outcome, response, requested_by)
        again = pipeline.conclude(ctx)

        assert got == what and why in reason, (what, reason)
        assert again.verdict.decision.value == "INCONCLUSIVE" and again.verdict.approval is None, what
        events = audit(ctx.run_id)
        assert len(events) == n
        kind, _actor, payload = events[-1]
        assert kind == ("run.approval_refused" if what == "refused" else "run.approval_rejected"), what
        assert payload["accepted"] and payload["decision_before"] == "INCONCLUSIVE"


def test_an_approval_grants_the_waivers_requested_for_every_blocker_of_a_no_go(tmp_path):
    from datetime import date, timedelta

    from releasegate.records import admin

    policy = tiny_policy(tmp_path, environment=False, extra={"suites": [{"name": "red", "paths": ["red"]}]})
    (tmp_path / "tiny" / "1.0.0" / "red").mkdir()
    (tmp_path / "tiny" / "1.0.0" / "red" / "test_red.py").write_text(
        "def test_red():\n    assert 1 == 2\n\ndef test_also_red():\n    assert 2 == 3\n")
    ctx = pipeline.begin(policy, "1.0.0", run_id=f"release_gate__manual-{tmp_path.name}")
    for name in pipeline.stage_names(pipeline.policy_of(ctx)):
        pipeline.run_stage(ctx, name, None)
    pipeline.finish(ctx, None)
    outcome = pipeline.conclude(ctx).as_json()
    first, second = (r["fingerprint"] for r in outcome["reasons"])
    until = date.today() + timedelta(days=14)

    asked = admin.request_waiver(first, "tiny", "flaky upstream; fix in TINY-1", "alice", until)
    assert needs_approval(outcome, admin.pending_waiver_requests("tiny")) is None  # one blocker has no request
    admin.request_waiver(second, "tiny", "known; fix in TINY-2", "dave", until)
    pending = admin.pending_waiver_requests("tiny")
    assert needs_approval(outcome, pending) == "waivers"
    subject, body = request_text(outcome, "carol", pending=pending)
    assert "grant the 2 waiver(s)" in subject and f"#{asked['id']}" in body and "alice" in body

    refused = settle(ctx, outcome, answer("Approve", "Alice"), requested_by="carol")  # a requester
    by_trigger = settle(ctx, outcome, answer("Approve", "carol"), requested_by="carol")
    approved = settle(ctx, outcome, answer("Approve", "bob"), requested_by="carol")
    again = pipeline.conclude(ctx)

    assert refused[0] == "refused" and "cannot approve their own waiver" in refused[1]
    assert by_trigger[0] == "refused" and "carol triggered this run" in by_trigger[1]
    assert approved[0] == "approved" and approved[1].startswith("bob granted waiver(s) #")
    assert again.verdict.decision.value == "GO"
    assert sorted((w.approver, w.requested_by) for w in again.verdict.waivers) == [("bob", "alice"), ("bob", "dave")]
    assert admin.pending_waiver_requests("tiny") == []
    kinds = [(kind, actor) for kind, actor, _payload in audit(ctx.run_id)]
    assert kinds == [("run.approval_refused", "Alice"), ("run.approval_refused", "carol")]
    with store.unit_of_work() as uow:
        granted = uow.audit.events(kind="run.approved_waivers")
    assert [(e["actor"], len(e["payload"]["waivers"])) for e in granted] == [("bob", 2)]


def test_the_approval_step_covers_every_blocker_once_and_shows_values_as_text():
    from releasegate.pipeline.approval import requests_for

    same_twice = {"decision": "NO_GO", "service": "tiny", "version": "1", "reasons": [
        {"stage": "pytest[a]", "message": "test_x failed", "severity": "high", "fingerprint": "fp1"},
        {"stage": "pytest[b]", "message": "test_x failed", "severity": "high", "fingerprint": "fp1"},
        {"stage": "x", "message": "missing_evidence: optional (optional stage: not deciding)", "severity": "low",
         "fingerprint": "gap"}]}
    low_blocker = {**same_twice, "reasons": [*same_twice["reasons"],
                                             {"stage": "semgrep", "message": "low rule", "severity": "low",
                                              "fingerprint": "fp2"}]}
    request = {"id": 7, "fingerprint": "fp1", "requested_by": "alice", "expires_on": "2026-12-31",
               "reason": "see [ticket](https://evil.example) ![x](https://evil.example/t.png) password=hunter2hunter2"}

    assert [r["id"] for r in requests_for(same_twice, [request])] == [7]
    assert needs_approval(low_blocker, [request]) is None  # a low blocker without a request blocks too
    _subject, body = request_text(same_twice, "carol", pending=[request])
    assert "`see [ticket](https://evil.example) ![x](https://evil.example/t.png) password=[REDACTED]`" in body
    assert "hunter2hunter2" not in body
