"""The dast and authz stages' pure parts: Schemathesis's recorded events as findings (fingerprint = operation +
check, severity by check, the request as curl with secrets redacted), its run report judged, the matrix's status
classes, forged tokens, response hygiene, and the policy sections' validation."""

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.policy import Authz, Dast
from releasegate.redact import forget, remember
from releasegate.stages import hygiene
from releasegate.stages.authz import hygiene_findings, status_in
from releasegate.stages.base import ToolRun
from releasegate.stages.callers import forged
from releasegate.stages.dast import curl, parse_events, read_report

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "schemathesis"
EVENTS = FIXTURES / "events-1.1.0.ndjson"  # recorded on the demo's 1.1.0, trimmed to its failing cases
OPERATION = "PUT /items/{item_id}/stock"


def events() -> list[str]:
    return EVENTS.read_text().splitlines()


def test_each_failing_operation_and_check_is_one_finding_with_a_stable_fingerprint():
    findings = parse_events(events(), Dast(openapi="openapi.json"))

    assert [(f.location, f.rule, f.severity.value, f.blocking) for f in findings] == [
        (OPERATION, "ignored_auth", "critical", True),
        (OPERATION, "not_a_server_error", "high", True),
        (OPERATION, "trace_in_error_body", "high", True),
    ]
    assert findings[0].fingerprint == fingerprint("dast", OPERATION, "ignored_auth")
    assert findings[0].title.startswith(f"ignored_auth on {OPERATION} — API accepts requests without authentication")
    assert findings[2].title.endswith("'Traceback (most recent call last)'")


def test_the_same_failures_in_other_examples_keep_their_fingerprints():
    """Another run's examples differ (ids, bodies, values): the findings and fingerprints do not."""
    changed = [line.replace('"quantity": 0', '"quantity": 41').replace("gizJuQ", "AbCdEf") for line in events()]

    assert [f.fingerprint for f in parse_events(changed, Dast(openapi="x"))] == \
        [f.fingerprint for f in parse_events(events(), Dast(openapi="x"))]


def test_the_policy_maps_a_checks_severity_and_what_blocks():
    spec = Dast(openapi="x", severity={"ignored_auth": "medium"}, blocking_severity="critical")
    found = {f.rule: f for f in parse_events(events(), spec)}

    assert (found["ignored_auth"].severity.value, found["ignored_auth"].blocking) == ("medium", False)
    assert found["not_a_server_error"].blocking is False


def test_the_reproduction_is_curl_with_the_token_and_known_secrets_redacted():
    remember(["tok-abcdef-123456"])
    try:
        text = curl({"method": "POST", "uri": "http://127.0.0.1:1/login",
                     "headers": {"Authorization": ["Bearer tok-abcdef-123456"], "X-Note": ["tok-abcdef-123456"]},
                     "body": {"$base64": "eyJwYXNzd29yZCI6ICJodW50ZXIyLWh1bnRlcjIifQ=="}})
    finally:
        forget()
    assert text.startswith("curl -X POST -H 'Authorization: [REDACTED]'") and text.endswith("http://127.0.0.1:1/login")
    assert "tok-abcdef-123456" not in text and "hunter2-hunter2" not in text


def tool_run(returncode: int, stdout: str = "", log: Path | None = None) -> ToolRun:
    return ToolRun(["schemathesis", "run"], returncode, stdout, "", 1.0, log=log)


SCHEMA_NOT_LOADED = """ ❌  Failed to load specification from http://127.0.0.1:18799/openapi.json
 Schema Loading Error
 Connection failed
     Failed to establish a new connection: [Errno 111] Connection refused
"""  # what schemathesis 4.32 prints when nothing serves the schema


def test_a_report_of_a_schema_that_did_not_load_is_an_error_in_schemathesis_words(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"errors": [{"title": "Schema Loading Error", "count": 1}], "failures": []}))

    with pytest.raises(StageError, match="Schema Loading Error.*Connection refused"):
        read_report(tool_run(2, SCHEMA_NOT_LOADED), report)


def test_a_finished_run_with_errors_is_partial_and_an_error(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"errors": [{"title": "Network Error", "count": 3}], "failures": []}))

    with pytest.raises(StageError, match=r"ran with errors: Network Error \(x3\)"):
        read_report(tool_run(1), report)


def test_the_recorded_report_reads(tmp_path):
    report = read_report(tool_run(1), FIXTURES / "report-1.1.0.json")
    assert report["operations"]["tested"] == 3


@pytest.mark.parametrize(("status", "expected", "held"), [
    (200, "2xx", True), (204, "2xx", True), (401, "401|403", True), (403, "401|403", True),
    (200, "401|403", False), (404, "4xx", True), (500, "4xx", False), (403, "401", False),
])
def test_status_classes(status, expected, held):
    assert status_in(status, expected) is held


def test_a_forged_token_keeps_its_shape_and_changes_its_signature():
    token = "eyJzdWIiOiJjbGVyayJ9.0a1b2c3d"
    fake = forged(token)
    assert (len(fake), fake[:-4]) == (len(token), token[:-4]) and fake != token
    assert forged("AAAA") == "BBBB"


def test_hygiene_flags_traces_version_headers_and_missing_headers():
    spec = Authz.model_validate({"callers": {"anonymous": {}}, "forbid_headers": ["Server", "X-Powered-By"],
                                 "require_headers": ["X-Content-Type-Options"],
                                 "endpoints": [{"method": "GET", "path": "/", "expect": {"anonymous": "2xx"}}]})
    cells = [{"endpoint": "GET /", "caller": "anonymous", "status": 500, "body": "Traceback ...",
              "trace": hygiene.trace_marker("Traceback (most recent call last):\n  File"),
              "headers": {"Server": "Werkzeug/3.1.9 Python/3.11.7", "X-Powered-By": "me"}}] * 2

    titles = sorted(f.title for f in hygiene_findings(cells, spec))

    assert titles == ["GET / answers with versions in 'Server: Werkzeug/3.1.9 Python/3.11.7'",
                      "GET / answers without the X-Content-Type-Options header",
                      "GET / as anonymous answered HTTP 500 with a stack trace or debug page "
                      "('Traceback (most recent call last)')"]


def test_a_plain_http_service_has_no_transport_problems_to_report():
    assert hygiene.tls_problems("http://127.0.0.1:1", 1) == []


@pytest.mark.parametrize(("section", "message"), [
    ({"callers": {"user": {}}, "endpoints": [{"method": "GET", "path": "/", "expect": {"admin": "2xx"}}]},
     "caller 'admin' is not defined"),
    ({"callers": {"user": {}, "forged": {"forge": "nobody"}},
      "endpoints": [{"method": "GET", "path": "/", "expect": {"user": "2xx"}}]}, "must name a caller"),
    ({"callers": {"user": {"token": "t", "token_env": "T"}},
      "endpoints": [{"method": "GET", "path": "/", "expect": {"user": "2xx"}}]}, "one of token, token_env"),
    ({"callers": {"user": {}}, "endpoints": [{"method": "GET", "path": "/", "expect": {"user": "two hundred"}}]},
     "expected status classes"),
    ({"callers": {"user": {}}, "endpoints": [{"method": "FETCH", "path": "/", "expect": {"user": "2xx"}}]},
     "unknown HTTP method"),
])
def test_a_matrix_that_cannot_be_probed_is_refused_when_the_policy_loads(section, message):
    with pytest.raises(ValidationError, match=message):
        Authz.model_validate(section)


def test_dast_refuses_unknown_checks_and_an_auth_caller_it_does_not_define():
    with pytest.raises(ValidationError, match="unknown checks"):
        Dast(openapi="x", checks=["no_such_check"])
    with pytest.raises(ValidationError, match="caller 'admin' is not defined"):
        Dast(openapi="x", auth="admin")


def test_the_documented_check_severities_are_the_gates():
    from releasegate.policy.security import DAST_CHECK_SEVERITY, DAST_UNKNOWN_SEVERITY

    text = (Path(__file__).resolve().parents[2] / "docs" / "policy.md").read_text()
    table = text.split("| Schemathesis check | default severity |", 1)[1].split("\n\n", 1)[0]
    rows = [[c.strip(" `") for c in line.strip("|").split("|")] for line in table.strip().splitlines()[1:]]
    documented = {check: severity for check, severity in rows}
    assert documented.pop("anything else") == DAST_UNKNOWN_SEVERITY.value
    assert documented.pop("trace_in_error_body` (the gate's)") == "high"
    assert documented == {check: severity.value for check, severity in DAST_CHECK_SEVERITY.items()}


def test_a_run_that_tested_no_operation_is_an_error_naming_why(tmp_path):
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"errors": [], "failures": [], "operations": {
        "selected": 3, "tested": 0, "skip_reasons": ["No examples in schema", "Time limit reached"]}}))

    with pytest.raises(StageError, match="tested no operation of 3 \\(skipped: No examples in schema, Time limit"):
        read_report(tool_run(0), report)


def test_reasons_about_a_token_endpoint_survive_redaction():
    """Redaction masks the word after a secret-looking key (`token:`): titles never put a colon after an endpoint."""
    from releasegate.redact import redact
    from releasegate.stages.authz import finding
    from releasegate.stages.dast import _finding

    dast = _finding("POST /token", "not_a_server_error", {"title": "Server error"}, {}, Dast(openapi="x"))
    spec = Authz.model_validate({"callers": {"anonymous": {}},
                                 "endpoints": [{"method": "POST", "path": "/token", "expect": {"anonymous": "4xx"}}]})
    authz = finding({"endpoint": "POST /token", "caller": "anonymous", "status": 500, "expected": "4xx", "body": ""},
                    spec)
    assert redact(dast.title) == dast.title == "not_a_server_error on POST /token — Server error"
    assert redact(authz.title) == authz.title == "POST /token as anonymous answered HTTP 500 where 4xx is required"
