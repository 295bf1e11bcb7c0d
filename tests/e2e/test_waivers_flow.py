"""Waivers from the CLI: a waived blocking finding turns NO_GO into GO, named in the verdict, until the
waiver is revoked or expires."""

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from releasegate.cli import main
from releasegate.records import store
from tests.support.demo import run_cli

pytestmark = pytest.mark.slow


def waive(fingerprint: str, approver: str = "lead", requested_by: str = "dev", days: int = 7) -> int:
    expires = (date.today() + timedelta(days=days)).isoformat()
    return main(["waive", fingerprint[:12], "--service", "inventory", "--reason", "accepted for this release: fix in 1.3",
                 "--requested-by", requested_by, "--approver", approver, "--expires", expires])


def test_waivers_turn_no_go_into_go_until_revoked_or_expired(quick_policy, capsys):
    code, before = run_cli(quick_policy, "1.2.0")
    assert code == 1
    fingerprints = sorted({r["fingerprint"] for r in before["reasons"]})

    assert waive(fingerprints[0], approver="dev", requested_by="dev") == 2
    assert "approve" in capsys.readouterr().err.lower()
    for fp in fingerprints:
        assert waive(fp) == 0

    code, waived = run_cli(quick_policy, "1.2.0")
    assert (code, waived["decision"]) == (0, "GO")
    assert sorted(w["fingerprint"] for w in waived["waivers"]) == fingerprints
    assert all(w["approver"] == "lead" for w in waived["waivers"])
    assert "waiver" in Path(waived["report"]).read_text().lower()
    payload = (Path(waived["evidence_dir"]) / "slack-payload.json").read_text()
    assert "with " + str(len(fingerprints)) + " waiver" in payload

    with store.unit_of_work() as uow:
        first = next(w for w in uow.waivers.list(service="inventory") if w["fingerprint"] == fingerprints[0])
    assert main(["waivers", "revoke", str(first["id"]), "--by", "lead", "--reason", "the fix slipped"]) == 0
    code, revoked = run_cli(quick_policy, "1.2.0")
    assert (code, revoked["decision"]) == (1, "NO_GO")
    assert [r["fingerprint"] for r in revoked["reasons"]] == [fingerprints[0]]

    # A waiver that expires today stops applying at once (granted yesterday, so it was valid when granted).
    yesterday = datetime.now(UTC) - timedelta(days=1)
    with store.unit_of_work() as uow:
        uow.waivers.grant("inventory", fingerprints[0], "one more day", "dev", "lead", date.today(), yesterday)
        uow.commit()
    code, expired = run_cli(quick_policy, "1.2.0")
    assert (code, expired["decision"]) == (1, "NO_GO")
