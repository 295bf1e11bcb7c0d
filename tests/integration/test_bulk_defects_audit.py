"""Defects and their audit events written in bulk: what ``defects.record`` says stands is what the table holds,
the fast paths (hashing, COPY lines, flat JSON) give the very text the generic ones do, and a run's transitions
reach the audit trail as one event per stage and move naming every defect."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

from sqlalchemy import select, text

from persistence import UnitOfWork
from persistence.audit import _HASHED, _hashed_body, canonical_json, canonical_payload
from persistence.bulk import (
    JsonText,
    _converter,
    _copy_lines,
    _copy_value,
    compact_json,
    flat_json,
    insert_rows,
)
from persistence.tables import AuditEventRow, DefectRow
from releasegate.records.audit import record_many, transition_events
from releasegate.redact import forget, redact_data, remember

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def seen(rule: str, stage: str = "semgrep") -> dict:
    return {"fingerprint": f"fp-{rule}", "kind": "sast", "rule": rule, "title": f"{rule} found",
            "severity": "high", "stage": stage}


def record(engine, run_id: str, at: datetime, found: list[dict], completed: set[str], waived=frozenset()):
    with UnitOfWork(engine, scrub=redact_data) as uow:
        uow.runs.upsert({"run_id": run_id, "service": "orders", "version": "1", "policy_path": "gate.yaml",
                         "policy_digest": "sha256:0", "evidence_dir": "", "started_at": at, "status": "running"})
        transitions, after = uow.defects.record("orders", run_id, found, completed, at, waived)
        record_many(uow, transition_events("orders", transitions, {d["fingerprint"]: d["stage"] for d in after}),
                    at, run_id, keep=frozenset({"fingerprints"}))
        uow.commit()
    with UnitOfWork(engine) as uow:
        stored = uow.defects.for_service("orders")
    return transitions, after, stored


def test_the_defects_record_returns_are_the_rows_the_table_holds(engine):
    a, b, c, d = seen("a"), seen("b"), seen("c", "pip_audit"), seen("d")
    steps = [("r1", [a, b, c], {"semgrep", "pip_audit"}, frozenset()),
             ("r2", [a, d], {"semgrep"}, frozenset({"fp-d"})),           # b fixed, c kept (pip_audit not run)
             ("r3", [a, b, d], {"semgrep", "pip_audit"}, frozenset()),   # b reopened, c fixed, d's waiver ended
             ("r3", [a, b, d], {"semgrep", "pip_audit"}, frozenset())]   # a retry: nothing moves
    for i, (run_id, found, completed, waived) in enumerate(steps):
        transitions, after, stored = record(engine, run_id, T0 + timedelta(days=i), found, completed, waived)

        assert after == stored, run_id
        assert [row["id"] for row in after] == sorted(row["id"] for row in stored)
    assert {row["fingerprint"]: row["state"] for row in stored} == {
        "fp-a": "recurring", "fp-b": "reopened", "fp-c": "fixed", "fp-d": "recurring"}
    assert transitions == []


def test_new_defects_seen_and_waived_in_one_run_are_written_in_order_with_their_own_states(engine):
    found = [seen("a"), seen("w1"), seen("b"), seen("w2", "pip_audit")]
    transitions, after, stored = record(engine, "r1", T0, found, {"semgrep", "pip_audit"},
                                        frozenset({"fp-w1", "fp-w2"}))

    assert after == stored
    assert {row["fingerprint"]: row["state"] for row in stored} == {
        "fp-a": "new", "fp-b": "new", "fp-w1": "waived", "fp-w2": "waived"}
    assert {row["fingerprint"]: row["stage"] for row in stored}["fp-w2"] == "pip_audit"
    assert sorted((t["fingerprint"], t["to"]) for t in transitions) == [
        ("fp-a", "new"), ("fp-b", "new"), ("fp-w1", "waived"), ("fp-w2", "waived")]
    assert all(row["service"] == "orders" and row["occurrences"] == 1 and row["first_run_id"] == "r1"
               for row in stored)


def test_insert_rows_writes_constant_columns_and_json_text_as_given(engine):
    table = AuditEventRow.__table__
    payload = {"to": "new", "fingerprints": ["é", "b\\t", 'q"'], "count": 3}
    with UnitOfWork(engine) as uow:
        written = insert_rows(uow.session, table, ("id", "subject", "payload"),
                              [(901, "s\tone", JsonText(canonical_payload(payload))), (902, "two", {"n": 1})],
                              {"at": T0, "kind": "k", "prev_hash": "p", "hash": "h", "run_id": None})
        uow.commit()
    with UnitOfWork(engine) as uow:
        rows = uow.session.execute(select(table.c.id, table.c.subject, table.c.payload, table.c.kind, table.c.at,
                                          table.c.run_id).where(table.c.id > 900).order_by(table.c.id)).all()
        raw = uow.session.execute(text("SELECT payload FROM audit_events WHERE id = 901")).scalar()
        uow.session.execute(text("DELETE FROM audit_events WHERE id > 900"))
        uow.commit()

    assert written == 2
    assert [(r.id, r.subject, r.payload, r.kind, r.run_id) for r in rows] == [
        (901, "s\tone", payload, "k", None), (902, "two", {"n": 1}, "k", None)]
    assert all(r.at.replace(tzinfo=UTC) == T0 for r in rows)
    assert isinstance(raw, dict) or raw == canonical_json(payload)  # SQLite keeps the very text (not encoded twice)


def test_a_runs_transitions_are_one_audit_event_per_stage_and_move(engine):
    remember(["hunter2-secret-title"])
    try:
        record(engine, "r1", T0, [seen("a"), seen("b"), seen("c", "pip_audit")], {"semgrep", "pip_audit"})
        record(engine, "r2", T0 + timedelta(days=1), [seen("a")], {"semgrep", "pip_audit"})
    finally:
        forget()
    with UnitOfWork(engine) as uow:
        events = [e for e in uow.audit.events() if e["kind"] == "defect.transitions"]
        check = uow.audit.verify()

    moves = [(e["run_id"], e["subject"], e["payload"]["fingerprints"], e["payload"]["count"]) for e in events]
    assert moves == [("r1", "orders:pip_audit:none->new", ["fp-c"], 1),
                     ("r1", "orders:semgrep:none->new", ["fp-a", "fp-b"], 2),
                     ("r2", "orders:pip_audit:new->fixed", ["fp-c"], 1),
                     ("r2", "orders:semgrep:new->fixed", ["fp-b"], 1),
                     ("r2", "orders:semgrep:new->recurring", ["fp-a"], 1)]
    assert check["ok"] is True and check["checked"] >= 5


def test_the_hashed_body_is_the_canonical_json_of_the_event():
    events = [
        {"id": 7, "at": T0, "kind": "defect.transitions", "subject": "orders:semgrep:none->new", "run_id": "r1",
         "actor": None, "payload": {"to": "new", "from": None, "count": 2, "ok": True}, "event_key": "k"},
        {"id": 8, "at": datetime(2026, 1, 2, 3, 4, 5, 6), "kind": "waiver.granted", "subject": 'quote " and \\ é ☃',
         "run_id": None, "actor": "Zoë \u2028", "payload": {"why": "line\nbreak\t\x01", "n": -3}, "event_key": None},
        {"id": 9, "at": datetime(2026, 1, 2, tzinfo=timezone(timedelta(hours=9))), "kind": "k", "subject": "s",
         "run_id": "r", "actor": "a", "payload": {"nested": {"b": 1, "a": [1, 2.5]}, "day": date(2026, 1, 2)},
         "event_key": "x"},
        {"id": 10, "at": T0, "kind": "k", "subject": "s", "run_id": "r", "actor": "a",
         "payload": {"f": 1.5, "when": T0}, "event_key": "x"},
    ]
    for event in events:
        assert _hashed_body(event) == canonical_json({k: event[k] for k in _HASHED}), event["id"]
        assert _hashed_body(event, canonical_payload(event["payload"])) == _hashed_body(event), event["id"]


def test_flat_json_tells_true_from_one_and_matches_json_dumps():
    import json

    for value in ({"a": True}, {"a": 1}, {"a": 1.0}, {"a": None}, {"a": "é"}, {"b": 2, "a": 1}, {"a": [1]}):
        for sort_keys in (False, True):
            for ensure_ascii in (False, True):
                expected = json.dumps(value, sort_keys=sort_keys, separators=(",", ":"), ensure_ascii=ensure_ascii,
                                      default=str)
                assert flat_json(value, sort_keys, ensure_ascii) == expected
                assert flat_json(value, sort_keys, ensure_ascii) == expected  # and again, from the cache


def test_compact_json_is_json_dumps_with_compact_separators():
    import json

    values = [{"a": 1, "b": [1, 2.5, None, True, -0.0, 1e300]}, {"é": "☃\u2028", "x": {"y": "\x01\"\\"}},
              [1, "a", {}], {"b": 2, "a": 1}, {"t": T0, "d": date(2026, 1, 2)}, "text", 7, None, {"n": float("nan")}]
    for value in values:
        for sort_keys in (False, True):
            for ensure_ascii in (False, True):
                assert compact_json(value, sort_keys, ensure_ascii) == json.dumps(
                    value, sort_keys=sort_keys, ensure_ascii=ensure_ascii, separators=(",", ":"), default=str)


def test_copy_lines_are_the_generic_conversion_also_for_a_value_reused_or_changed_in_place():
    audit, defects = AuditEventRow.__table__, DefectRow.__table__
    columns = ["id", "at", "kind", "subject", "payload"]
    payload = {"n": 1}
    rows = [(1, T0, "k", "a\tb", payload), (2, T0, "k", None, payload)]
    first = list(_copy_lines(rows[:1], [_converter(audit, c) for c in columns]))
    payload["n"] = 2  # the same dict, changed between two rows
    lines = first + list(_copy_lines(rows[1:], [_converter(audit, c) for c in columns]))
    converters = [_converter(audit, c) for c in columns]
    both = list(_copy_lines(iter([(1, T0, "k", "a\tb", {"n": 1}), (2, T0, "k", None, payload)]), converters))

    assert lines == ["1\t2026-11-20T09:00:00+00:00\tk\ta\\tb\t{\"n\":1}\n",
                     "2\t2026-11-20T09:00:00+00:00\tk\t\\N\t{\"n\":2}\n"]
    assert both == lines
    shared = {"n": 1}
    reused = _copy_lines(((i, T0, "k", "s", shared) for i in range(2)), converters)
    assert next(reused).endswith('{"n":1}\n')
    shared["n"] = 5
    assert next(reused).endswith('{"n":5}\n')  # a mutable value is converted again each row
    assert _copy_value("x\\y", False) == "x\\\\y" and _converter(defects, "title")("x\\y") == "x\\\\y"


def test_floats_and_nul_in_audit_events_keep_the_chain_verifiable_on_every_backend(engine):
    from persistence.tables import utcnow

    odd = [{"value": -0.0}, {"value": 1e16}, {"values": [2.5e20, 0.1]}, {"why": "nul\x00here"},
           {"n": float("nan")}, {"deep": {"x": [1.5, "a\x00b"]}}]
    with UnitOfWork(engine) as uow:
        for i, payload in enumerate(odd):
            uow.audit.append("probe", f"svc:a\x00b{i}", payload, utcnow(), actor="z\x00oe", key=f"odd-{i}")
        uow.commit()
    with UnitOfWork(engine) as uow:
        check = uow.audit.verify()
        stored = [(e["subject"], e["actor"], e["payload"]) for e in uow.audit.events(kind="probe")]

    assert check["ok"], check
    assert stored[0] == ("svc:ab0", "zoe", {"value": "-0.0"})
    assert stored[3][2] == {"why": "nulhere"} and stored[4][2] == {"n": "nan"}


def test_a_nul_in_a_finding_title_is_stored_the_same_on_insert_and_update(engine):
    titled = [{**seen("a"), "title": "nul\x00here"}]
    record(engine, "r1", T0, titled, {"semgrep"})
    _transitions, _after, stored = record(engine, "r2", T0 + timedelta(days=1), titled, {"semgrep"})

    assert [(d["title"], d["state"]) for d in stored] == [("nulhere", "recurring")]
