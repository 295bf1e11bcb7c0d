"""Waivers and waived defects on SQLite and PostgreSQL: grant, list, revoke, expiry, and what they do to defects."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from persistence import UnitOfWork

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
EXPIRES = date(2026, 12, 1)


def grant(engine, fingerprint: str = "fp-sqli", requested_by: str = "alice", approver: str = "bob",
          expires_on: date = EXPIRES, reason: str = "not exposed until 2.0", at: datetime = T0) -> dict:
    with UnitOfWork(engine) as uow:
        waiver = uow.waivers.grant("orders", fingerprint, reason, requested_by, approver, expires_on, at)
        uow.commit()
    return waiver


def test_grant_list_revoke_and_their_audit_events(engine):
    first = grant(engine)
    listed = _list(engine, T0)

    with UnitOfWork(engine) as uow:
        revoked = uow.waivers.revoke(first["id"], "carol", "fixed in 1.4.3", T0 + timedelta(hours=1))
        uow.commit()
    with UnitOfWork(engine) as uow:
        active_after = uow.waivers.active("orders", T0 + timedelta(hours=2))
        events = [(e["kind"], e["actor"], e["payload"]["waiver_id"]) for e in uow.audit.events()]

    assert (first["status"], first["approver"], first["expires_on"]) == ("active", "bob", EXPIRES)
    assert [(w["id"], w["status"]) for w in listed] == [(first["id"], "active")]
    assert (revoked["status"], revoked["revoked_by"], revoked["revoke_reason"]) == ("revoked", "carol", "fixed in 1.4.3")
    assert active_after == []
    assert _list(engine, T0 + timedelta(hours=2))[0]["status"] == "revoked"
    assert events == [("waiver.granted", "bob", first["id"]), ("waiver.revoked", "carol", first["id"])]


def _list(engine, at: datetime, service: str | None = "orders") -> list[dict]:
    with UnitOfWork(engine) as uow:
        return uow.waivers.list(service=service, at=at)


def test_a_second_live_waiver_for_the_same_finding_is_refused(engine):
    first = grant(engine)

    with pytest.raises(ValueError, match=f"waiver #{first['id']} already covers"):
        grant(engine, approver="dave")


def test_expiry_boundary_is_the_first_moment_of_the_expiry_date_in_utc(engine):
    grant(engine)
    last_moment = datetime(2026, 11, 30, 23, 59, 59, 999999, tzinfo=UTC)
    expiry_day = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    still_30th_in_utc = datetime(2026, 12, 1, 1, 0, tzinfo=timezone(timedelta(hours=2)))

    with UnitOfWork(engine) as uow:
        active = [bool(uow.waivers.active("orders", at)) for at in (last_moment, expiry_day, still_30th_in_utc)]
        waived = uow.waivers.fingerprints("orders", last_moment)

    assert active == [True, False, True]
    assert waived == frozenset({"fp-sqli"})
    assert _list(engine, expiry_day)[0]["status"] == "expired"


def test_revoking_twice_says_when_and_by_whom_and_unknown_ids_are_lookup_errors(engine):
    waiver = grant(engine)
    with UnitOfWork(engine) as uow:
        uow.waivers.revoke(waiver["id"], "carol", "risk accepted elsewhere", T0)
        uow.commit()

    with UnitOfWork(engine) as uow:
        with pytest.raises(ValueError, match=r"already revoked at 2026-11-24T12:00:00\+00:00 by carol"):
            uow.waivers.revoke(waiver["id"], "dave", "again", T0 + timedelta(hours=1))
        with pytest.raises(LookupError, match="no waiver #999"):
            uow.waivers.revoke(999, "dave", "typo", T0)


# --- waived defects --------------------------------------------------------------------------------------------

def sqli(stage: str = "semgrep") -> dict:
    return {"fingerprint": "fp-sqli", "kind": "sast", "rule": "sqli", "severity": "high", "title": "SQL injection",
            "stage": stage}


def observe(engine, run_id: str, at: datetime, found: list[dict], waived: frozenset[str] = frozenset()) -> list:
    with UnitOfWork(engine) as uow:
        transitions = uow.defects.observe("orders", run_id, found, {"semgrep"}, at, waived=waived)
        uow.commit()
    return [(t["from"], t["to"]) for t in transitions]


def state(engine) -> tuple[str, int]:
    with UnitOfWork(engine) as uow:
        defect = uow.defects.for_service("orders")[0]
    return defect["state"], defect["occurrences"]


def test_a_waived_finding_is_waived_and_leaves_for_recurring_when_the_waiver_ends(engine):
    waived = frozenset({"fp-sqli"})
    days = [T0 + timedelta(days=i) for i in range(5)]

    steps = [observe(engine, "r1", days[0], [sqli()]),
             observe(engine, "r2", days[1], [sqli()], waived),
             observe(engine, "r2", days[1], [sqli()], waived),     # a retried task
             observe(engine, "r3", days[2], [sqli()], waived),
             observe(engine, "r4", days[3], [sqli()])]             # waiver expired or revoked
    after = state(engine)
    fixed = observe(engine, "r5", days[4], [], waived)             # the problem went away

    assert steps == [[(None, "new")], [("new", "waived")], [], [], [("waived", "recurring")]]
    assert after == ("recurring", 4)
    assert fixed == [("recurring", "fixed")]


def test_a_finding_waived_from_its_first_sighting_starts_waived(engine):
    assert observe(engine, "r1", T0, [sqli()], frozenset({"fp-sqli"})) == [(None, "waived")]
    assert state(engine) == ("waived", 1)


def test_plan_records_remediation_and_owner_and_for_service_shows_everything(engine):
    observe(engine, "r1", T0, [sqli()])
    observe(engine, "r2", T0 + timedelta(days=1), [sqli()])

    with UnitOfWork(engine) as uow:
        uow.defects.plan("orders", "fp-sqli", "parameterise the query in app/db.py", "team-orders")
        uow.commit()
    with UnitOfWork(engine) as uow:
        defect = uow.defects.for_service("orders")[0]
        with pytest.raises(LookupError, match="defects list --service orders"):
            uow.defects.plan("orders", "fp-unknown", "x", "y")

    assert {k: defect[k] for k in ("state", "severity", "first_run_id", "last_run_id", "occurrences", "remediation",
                                   "owner", "stage", "title", "kind")} == {
        "state": "recurring", "severity": "high", "first_run_id": "r1", "last_run_id": "r2", "occurrences": 2,
        "remediation": "parameterise the query in app/db.py", "owner": "team-orders", "stage": "semgrep",
        "title": "SQL injection", "kind": "sast"}


# --- the CLI -------------------------------------------------------------------------------------------------

FP_A = "a1b2c3d4e5f60718293a4b5c6d7e8f90"
FP_B = "a1b2c3d4ffff0718293a4b5c6d7e8f90"
IN_A_MONTH = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
WAIVE = ["--service", "orders", "--reason", "internal only", "--requested-by", "alice", "--approver", "bob",
         "--expires", IN_A_MONTH]


@pytest.fixture
def cli_db(cli_db):
    """The shared test database (tests/conftest.py), with two known defects."""
    from releasegate.records import store

    with UnitOfWork(store.engine()) as uow:
        uow.defects.observe("orders", "r1", [sqli() | {"fingerprint": fp} for fp in (FP_A, FP_B)], set(), T0)
        uow.commit()
    return cli_db


def cli(capsys, *argv: str) -> tuple[int, str, str]:
    from releasegate.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out.strip(), captured.err.strip()


def test_cli_waive_list_revoke(cli_db, capsys):
    code, out, _ = cli(capsys, "waive", FP_A[:10], *WAIVE)
    waiver_id = int(out)
    listed = json.loads(cli(capsys, "waivers", "list", "--service", "orders", "--json")[1])
    revoked = cli(capsys, "waivers", "revoke", str(waiver_id), "--by", "carol", "--reason", "fixed")
    again = cli(capsys, "waivers", "revoke", str(waiver_id), "--by", "carol", "--reason", "fixed")
    text_list = cli(capsys, "waivers", "list")[1]

    assert code == 0
    assert [(w["id"], w["fingerprint"], w["status"]) for w in listed] == [(waiver_id, FP_A, "active")]
    assert revoked == (0, f"waiver #{waiver_id} revoked by carol", "")
    assert again[0] == 2 and "already revoked" in again[2] and "by carol" in again[2]
    assert text_list.startswith(f"#{waiver_id}  revoked")


@pytest.mark.parametrize(("given", "extra", "message"), [
    (FP_A[:8], [], "ambiguous"),
    ("ffffffffff", [], "no defect of service 'orders' has a fingerprint starting 'ffffffffff'"),
    (FP_A[:6], [], "too short: give at least 8 characters"),
    (FP_A, ["--approver", "ALICE"], "cannot approve their own waiver"),
    (FP_A, ["--expires", "2026-13-01"], "write a date as YYYY-MM-DD"),
])
def test_cli_waive_refusals_exit_2_with_the_reason(cli_db, capsys, given, extra, message):
    code, out, err = cli(capsys, "waive", given, *WAIVE, *extra)

    assert (code, out) == (2, "")
    assert message in err


def test_cli_defects_list_and_plan(cli_db, capsys):
    planned = cli(capsys, "defects", "plan", FP_B[:12], "--service", "orders", "--owner", "team-orders",
                  "--plan", "bind parameters")
    listed = json.loads(cli(capsys, "defects", "list", "--service", "orders", "--json")[1])
    text_list = cli(capsys, "defects", "list", "--service", "orders")[1].splitlines()
    unknown = cli(capsys, "defects", "plan", "0000000000", "--service", "orders", "--owner", "x", "--plan", "y")

    assert planned[0] == 0
    assert {d["fingerprint"]: (d["owner"], d["remediation"]) for d in listed} == {
        FP_A: (None, None), FP_B: ("team-orders", "bind parameters")}
    assert text_list[1].endswith("owner team-orders: bind parameters")
    assert unknown[0] == 2


# --- identities, limits and who ran the command ------------------------------------------------------------------

def waiver_rows_and_events() -> tuple[list, list]:
    from releasegate.records import store

    with UnitOfWork(store.engine()) as uow:
        return uow.waivers.list(service=None), uow.audit.events()


@pytest.mark.parametrize(("approver", "message"), [
    ("b\u043eb", "U+043E CYRILLIC SMALL LETTER O"),       # Cyrillic о: a different person to a computer only
    ("alice\u200b", "cannot approve their own waiver"),   # zero-width space
    ("\uff41\uff4c\uff49\uff43\uff45", "cannot approve their own waiver"),  # fullwidth ａｌｉｃｅ
    ("ALICE\ufeff", "cannot approve their own waiver"),
])
def test_cli_refuses_faked_approvers_and_writes_nothing(cli_db, capsys, approver, message):
    code, out, err = cli(capsys, "waive", FP_A, *WAIVE, "--approver", approver)

    assert (code, out) == (2, "")
    assert message in err
    assert waiver_rows_and_events() == ([], [])


def test_cli_refuses_an_expiry_beyond_the_limit_naming_it(cli_db, capsys):
    code, _, err = cli(capsys, "waive", FP_A, *WAIVE, "--expires", "9999-12-31")

    assert code == 2
    assert "at most 90 days (waivers.max_days" in err and "pick a date on or before" in err
    assert waiver_rows_and_events() == ([], [])


def policy_file(tmp_path, service: str = "orders", max_days: int = 14):
    path = tmp_path / "gate.yaml"
    path.write_text(f"service: {service}\nwaivers: {{max_days: {max_days}}}\n")
    return path


def test_the_policy_limit_applies_given_or_from_the_latest_run(cli_db, capsys, tmp_path):
    from releasegate.records import store

    policy = policy_file(tmp_path)
    given = cli(capsys, "waive", FP_A, *WAIVE, "--policy", str(policy))
    with UnitOfWork(store.engine()) as uow:
        uow.runs.upsert({"run_id": "r1", "service": "orders", "version": "1.0", "policy_path": str(policy),
                         "policy_digest": "sha256:x", "evidence_dir": "", "started_at": T0, "status": "finished"})
        uow.commit()
    from_run = cli(capsys, "waive", FP_A, *WAIVE)
    other_service = cli(capsys, "waive", FP_A, *WAIVE, "--policy", str(policy_file(tmp_path, "billing")))
    two_weeks = (datetime.now(UTC).date() + timedelta(days=14)).isoformat()
    within = cli(capsys, "waive", FP_A, *WAIVE, "--expires", two_weeks)

    assert given[0] == 2 and "at most 14 days" in given[2]
    assert from_run[0] == 2 and "at most 14 days" in from_run[2]
    assert other_service[0] == 2 and "policy of service 'billing', not 'orders'" in other_service[2]
    assert within[0] == 0


def test_grant_and_revoke_store_canonical_names_and_record_who_ran_the_command(cli_db, capsys, monkeypatch):
    from releasegate.records import admin

    monkeypatch.setenv("GITHUB_ACTOR", "release-bot")
    monkeypatch.delenv("GITLAB_USER_LOGIN", raising=False)
    monkeypatch.delenv("BUILD_USER", raising=False)
    code, out, _ = cli(capsys, "waive", FP_A, *WAIVE, "--requested-by", " Alice ", "--approver", "\uff22ob")
    revoked = cli(capsys, "waivers", "revoke", out, "--by", "Carol\u200b", "--reason", "fixed")
    waivers, events = waiver_rows_and_events()

    assert code == 0 and revoked[0] == 0
    assert (waivers[0]["requested_by"], waivers[0]["approver"], waivers[0]["revoked_by"]) == ("alice", "bob", "carol")
    expected_caller = {"github_actor": "release-bot"} | ({"os_user": admin.local_user()} if admin.local_user() else {})
    assert [(e["kind"], e["actor"], e["payload"]["caller"]) for e in events] == [
        ("waiver.granted", "bob", expected_caller), ("waiver.revoked", "carol", expected_caller)]
    assert cli(capsys, "audit", "verify")[0] == 0


def test_a_finding_not_seen_yet_is_waived_by_its_full_fingerprint_only(cli_db):
    """A fresh database (CI's, for the self-gate): the waiver is granted before the finding's first sighting."""
    from releasegate.records import admin

    unseen = "0f" * 16
    args = ("orders", "reviewed: not reachable", "alice", "bob", date.fromisoformat(IN_A_MONTH))
    granted = admin.waive(unseen, *args, unseen=True)
    with pytest.raises(admin.AdminError, match="not a full fingerprint"):
        admin.waive(unseen[:12], *args, unseen=True)
    with pytest.raises(admin.AdminError, match="no defect of service 'orders'"):
        admin.waive("1e" * 16, *args)

    assert (granted["fingerprint"], granted["status"], granted["approver"]) == (unseen, "active", "bob")
    assert [w["fingerprint"] for w in waiver_rows_and_events()[0]] == [unseen]


def test_cli_waiver_request_waits_for_an_approver_and_a_grant_settles_it(cli_db, capsys):
    ask = ["--service", "orders", "--reason", "behind the VPN until 2.0", "--requested-by", "alice",
           "--expires", IN_A_MONTH]
    code, out, _ = cli(capsys, "waivers", "request", FP_A[:10], *ask)
    twice = cli(capsys, "waivers", "request", FP_A[:10], *ask)
    no_reason = cli(capsys, "waivers", "request", FP_B, *ask[:2], "--reason", " ", *ask[4:])
    pending = json.loads(cli(capsys, "waivers", "requests", "--service", "orders", "--json")[1])
    waiver_id = int(cli(capsys, "waive", FP_A, *WAIVE)[1])  # granted another way: the request is settled
    after = json.loads(cli(capsys, "waivers", "requests", "--json")[1])

    assert code == 0 and out.startswith("waiver request #") and "waits for an approver" in out
    assert twice[0] == 2 and "already asks for a waiver" in twice[2]
    assert no_reason[0] == 2 and "a waiver needs a reason" in no_reason[2]
    assert [(r["fingerprint"], r["requested_by"], r["status"]) for r in pending] == [(FP_A, "alice", "pending")]
    assert after == []
    with UnitOfWork(store_engine()) as uow:
        row = uow.session.execute(text("SELECT status, decided_by, waiver_id FROM waiver_requests")).one()
        kinds = [e["kind"] for e in uow.audit.events()]
    assert tuple(row) == ("granted", "bob", waiver_id)
    assert kinds.count("waiver.requested") == 1 and kinds.count("waiver.granted") == 1


def store_engine():
    from releasegate.records import store

    return store.engine()


def test_a_secret_in_a_waiver_reason_is_redacted_before_it_is_stored(cli_db, capsys):
    leaky = "token rotated; old one was password=hunter2hunter2 until today"
    ask = ["--service", "orders", "--reason", leaky, "--requested-by", "alice", "--expires", IN_A_MONTH]
    assert cli(capsys, "waivers", "request", FP_B, *ask)[0] == 0
    assert cli(capsys, "waive", FP_A, *WAIVE[:2], "--reason", leaky, *WAIVE[4:])[0] == 0

    with UnitOfWork(store_engine()) as uow:
        stored = [r for (r,) in uow.session.execute(text("SELECT reason FROM waivers UNION ALL "
                                                         "SELECT reason FROM waiver_requests")).all()]
    assert len(stored) == 2 and all("hunter2" not in r and "password=[REDACTED]" in r for r in stored)
