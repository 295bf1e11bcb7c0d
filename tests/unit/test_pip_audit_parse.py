"""pip-audit's JSON (real pip-audit 2.10.1 output against the OSV mirror) as findings; fail-closed checks."""

import json
from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.domain.models import Severity
from releasegate.stages.base import ToolRun
from releasegate.stages.pip_audit import (
    advisory_severity,
    check_complete,
    check_mirror_served,
    cvss3_base_score,
    cvss_rating,
    load_report,
    parse_pip_audit,
    stderr_reason,
    vuln_ids,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "pip-audit"


def fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def ran(stderr: str = "") -> ToolRun:
    return ToolRun(["pip-audit"], 1, "", stderr, 0.5)


def test_requests_2_19_0_without_severity_is_unknown_and_high_by_policy():
    found = parse_pip_audit(fixture("requests-2.19.0.json"), {}, Severity.high, Severity.high)

    assert [f.rule for f in found] == ["PYSEC-2018-28", "PYSEC-2023-74"]
    assert found[0].title == "requests 2.19.0: PYSEC-2018-28 (CVE-2018-18074, GHSA-x84v-xcm2-53pg) fixed in 2.20.0"
    assert all(f.severity is Severity.high and f.blocking for f in found)
    assert {f.data["severity_source"] for f in found} == {"unknown"}
    assert found[0].kind == "vulnerability" and found[0].location == "requests==2.19.0"


def test_severity_comes_from_the_osv_records_cvss_vector():
    doc, records = fixture("aiohttp-3.8.5.json"), fixture("aiohttp-3.8.5.advisories.json")

    found = {f.rule: f for f in parse_pip_audit(doc, records, Severity.high, Severity.high)}

    assert found["PYSEC-2023-246"].severity is Severity.high          # C:N/I:H/A:N = 7.5
    assert found["PYSEC-2023-250"].severity is Severity.medium        # I:L = 5.3
    assert found["PYSEC-2023-250"].blocking is False
    assert found["PYSEC-2023-246"].data["severity_source"] == "cvss_v3 7.5"


def test_fingerprint_ignores_alias_order_and_package_spelling():
    doc = fixture("requests-2.19.0.json")
    shuffled = json.loads(json.dumps(doc))
    shuffled["dependencies"][0]["name"] = "Requests"
    for vuln in shuffled["dependencies"][0]["vulns"]:
        vuln["aliases"].reverse()

    first = parse_pip_audit(doc, {}, Severity.high, Severity.high)
    second = parse_pip_audit(shuffled, {}, Severity.high, Severity.high)

    assert [f.fingerprint for f in first] == [f.fingerprint for f in second]


@pytest.mark.parametrize(("vector", "score", "rating"), [
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, Severity.critical),
    ("CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9, Severity.critical),
    ("CVSS:3.1/AV:L/AC:L/PR:N/UI:R/S:U/C:N/I:N/A:H", 5.5, Severity.medium),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, Severity.medium),
    ("CVSS:3.0/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N", 5.9, Severity.medium),
    ("CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0.0, Severity.info),
])
def test_cvss3_base_score_matches_firsts_calculator(vector, score, rating):
    assert cvss3_base_score(vector) == score
    assert cvss_rating(score) is rating


def test_records_without_cvss_fall_back_to_database_specific_then_nothing():
    assert advisory_severity({"database_specific": {"severity": "MODERATE"}}) == (Severity.medium, "database_specific")
    assert advisory_severity({"severity": [{"type": "CVSS_V3", "score": "nonsense"}]}) is None
    assert advisory_severity(None) is None


def test_skipped_dependencies_are_an_error_naming_them():
    with pytest.raises(StageError, match="could not audit 2 dependencies: localpkg: URL requirements"):
        check_complete(fixture("skipped.json"), ran(), "http://127.0.0.1:1/v1/query")


def test_zero_dependencies_is_an_error():
    with pytest.raises(StageError, match="audited 0 dependencies"):
        check_complete(fixture("empty.json"), ran(), "u")


def test_unpinned_requirement_leaves_no_json_and_says_how_to_fix():
    stderr = (FIXTURES / "unpinned.stderr.txt").read_text()

    with pytest.raises(StageError, match=r"flask is not pinned to an exact version.*pin it with =="):
        load_report("", 1, stderr)


def test_closed_port_is_an_error_not_no_known_vulnerabilities():
    stderr = (FIXTURES / "closed-port.stderr.txt").read_text()

    with pytest.raises(StageError, match="could not reach the OSV endpoint"):
        load_report("", 1, stderr)
    assert "could not reach" in stderr_reason(stderr)


def test_a_connection_error_on_stderr_voids_a_report():
    with pytest.raises(StageError, match="error talking to"):
        check_complete(fixture("requests-2.19.0.json"), ran("requests.exceptions.ConnectionError: x"), "u")


def test_mirror_must_have_answered_one_query_per_dependency():
    check_mirror_served(1, 1, "u")
    with pytest.raises(StageError, match="answered only 0 queries"):
        check_mirror_served(0, 1, "u")


def test_vuln_ids_are_unique_and_sorted():
    assert vuln_ids(fixture("aiohttp-3.8.5.json"))[:2] == ["PYSEC-2023-246", "PYSEC-2023-250"]
