"""The audit trail on SQLite and PostgreSQL: a hash chain that shows altered, removed and truncated events."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import text

from persistence import UnitOfWork, engine_from_url
from persistence.audit import GENESIS, canonical_json
from persistence.migrate import ensure_schema

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def append(engine, n: int, key_prefix: str | None = None) -> list[dict | None]:
    with UnitOfWork(engine) as uow:
        events = [uow.audit.append("stage.result", f"pytest[unit-{i}]",
                                   {"status": "passed", "n": i, "nested": {"b": 1.5, "a": [3, "x"]},
                                    "when": T0 + timedelta(seconds=i), "day": date(2026, 12, 1), "name": "Zoë"},
                                   T0 + timedelta(seconds=i), run_id="rg-1", actor="airflow",
                                   key=f"{key_prefix}-{i}" if key_prefix else None)
                  for i in range(n)]
        uow.commit()
    return events


def verify(engine) -> dict:
    with UnitOfWork(engine) as uow:
        return uow.audit.verify()


def tamper(engine, sql: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(sql))


def test_appended_events_form_a_chain_that_verifies(engine):
    events = append(engine, 5)
    append(engine, 2)  # a later transaction continues the chain

    assert events[0]["prev_hash"] == GENESIS
    assert [e["prev_hash"] for e in events[1:]] == [e["hash"] for e in events[:-1]]
    assert events[0]["payload"]["when"] == "2026-11-24T12:00:00+00:00"  # stored as it was hashed
    assert verify(engine) == {"ok": True, "checked": 7, "first_bad_id": None, "problem": None}


def test_canonical_json_sorts_keys_drops_whitespace_and_writes_utc():
    assert canonical_json({"b": 1, "a": [T0]}) == '{"a":["2026-11-24T12:00:00+00:00"],"b":1}'


def test_the_same_key_appends_once(engine):
    first = append(engine, 3, key_prefix="rg-1:stage")
    again = append(engine, 3, key_prefix="rg-1:stage")  # a retried task

    with UnitOfWork(engine) as uow:
        count = uow.audit.count()
    assert all(first) and again == [None, None, None]
    assert count == 3 and verify(engine)["ok"]


def test_an_altered_payload_is_named(engine):
    events = append(engine, 5)
    target = events[2]["id"]

    tamper(engine, f"""UPDATE audit_events SET payload = '{{"status": "failed"}}' WHERE id = {target}""")

    assert verify(engine) == {"ok": False, "checked": 2, "first_bad_id": target,
                              "problem": "hash mismatch (row altered)"}


def test_a_removed_middle_event_is_named_by_the_event_after_it(engine):
    events = append(engine, 5)

    tamper(engine, f"DELETE FROM audit_events WHERE id = {events[2]['id']}")

    result = verify(engine)
    assert (result["ok"], result["first_bad_id"]) == (False, events[3]["id"])
    assert result["problem"].startswith(f"previous hash does not match event #{events[1]['id']}")


def test_a_removed_last_event_is_caught_by_the_chain_head(engine):
    events = append(engine, 5)

    tamper(engine, f"DELETE FROM audit_events WHERE id = {events[-1]['id']}")

    result = verify(engine)
    assert (result["ok"], result["checked"], result["first_bad_id"]) == (False, 4, events[-1]["id"])
    assert "events were removed from the end" in result["problem"]


def test_emptying_the_trail_or_its_head_is_caught(engine):
    append(engine, 2)
    tamper(engine, "DELETE FROM audit_head")
    no_head = verify(engine)
    tamper(engine, "DELETE FROM audit_events")

    assert (no_head["ok"], no_head["problem"]) == (False, "no chain head recorded (audit_head was emptied)")
    assert verify(engine)["ok"] is True  # nothing left to check, and no head claims otherwise


def test_an_event_inserted_behind_the_heads_back_is_caught(engine):
    events = append(engine, 2)

    tamper(engine, "INSERT INTO audit_events (at, kind, subject, payload, prev_hash, hash) "
                   f"VALUES ('2026-11-25 00:00:00', 'forged', 'x', '{{}}', '{events[-1]['hash']}', 'f')")

    result = verify(engine)
    assert (result["ok"], result["first_bad_id"]) == (False, events[-1]["id"] + 1)


# --- the CLI -------------------------------------------------------------------------------------------------

def test_cli_audit_verify_exit_codes_and_messages(cli_db, capsys):
    from releasegate.cli import main

    ensure_schema(cli_db)
    engine = engine_from_url(cli_db)
    events = append(engine, 3)
    intact = main(["audit", "verify"])
    tamper(engine, f"UPDATE audit_events SET actor = 'mallory' WHERE id = {events[1]['id']}")
    broken = main(["audit", "verify"])
    engine.dispose()

    assert (intact, broken) == (0, 1)
    assert capsys.readouterr().out.splitlines() == [
        "audit chain intact: 3 events",
        f"audit chain broken at event #{events[1]['id']}: hash mismatch (row altered)"]
