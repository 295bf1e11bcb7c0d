"""Defects that live across runs: 1.0.0, 1.1.0, then 1.2.0 (fixes half, regresses one), then 1.1.0 again."""

import pytest

from releasegate.records import store
from tests.support.demo import run_cli

pytestmark = pytest.mark.slow

PRICING = "tests/unit/test_pricing.py::"
CONTRACT = "tests/contract/test_items_contract.py::test_missing_item_error_shape"


def states() -> dict[str, dict]:
    with store.unit_of_work() as uow:
        return {d["fingerprint"]: d for d in uow.defects.for_service("inventory")}


def by_title(defects: dict[str, dict], text: str) -> list[dict]:
    return [d for d in defects.values() if text in d["title"]]


def test_defects_across_three_releases_and_a_relapse(quick_policy):
    code, first = run_cli(quick_policy, "1.0.0")
    assert (code, first["decision"], states()) == (0, "GO", {})

    code, broken = run_cli(quick_policy, "1.1.0")
    assert code == 1
    after_broken = states()
    blocking = {r["fingerprint"] for r in broken["reasons"]}
    assert blocking <= set(after_broken)
    assert {after_broken[fp]["state"] for fp in blocking} == {"new"}
    assert len(by_title(after_broken, PRICING)) == 3

    code, partial = run_cli(quick_policy, "1.2.0")
    assert code == 1
    after_partial = states()
    still = {r["fingerprint"] for r in partial["reasons"]}
    assert all(after_partial[fp]["state"] == "fixed" for fp in blocking - still)
    assert all(after_partial[fp]["state"] == "recurring" for fp in blocking & still)
    regressed = [after_partial[fp]["title"] for fp in still - blocking]
    assert len(regressed) == 1 and CONTRACT in regressed[0]
    assert {d["state"] for d in by_title(after_partial, PRICING)} == {"fixed"}
    assert [d["state"] for d in by_title(after_partial, CONTRACT)] == ["new"]
    assert [d["state"] for d in after_partial.values() if d["kind"] == "sast"] == ["fixed"]
    assert {d["state"] for d in after_partial.values() if d["kind"] in ("vulnerability",)} == {"recurring"}
    assert [d["state"] for d in after_partial.values() if d["rule"] == "p95_ms"] == ["recurring"]
    new_in_partial = [d["title"] for d in partial["defects"] if d["state"] in ("new", "reopened")]
    assert new_in_partial == [by_title(after_partial, CONTRACT)[0]["title"]]

    code, relapse = run_cli(quick_policy, "1.1.0")
    assert code == 1
    after_relapse = states()
    assert {d["state"] for d in by_title(after_relapse, PRICING)} == {"reopened"}
    assert [d["state"] for d in by_title(after_relapse, CONTRACT)] == ["fixed"]
    assert all(d["occurrences"] == 3 for d in after_relapse.values() if d["rule"] == "p95_ms")
    reopened = {d["fingerprint"] for d in relapse["defects"] if d["state"] == "reopened"}
    assert {d["fingerprint"] for d in by_title(after_relapse, PRICING)} <= reopened
