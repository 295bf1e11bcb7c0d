"""parse_semgrep on real semgrep 1.185 output (tests/fixtures/semgrep): findings, severities, fingerprints."""

import json
from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.domain.models import Severity
from releasegate.stages.semgrep import (
    SEVERITY,
    attach_lines,
    excerpt,
    fatal_errors,
    load_semgrep_json,
    matched_lines,
    parse_semgrep,
    semgrep_command,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "semgrep"


def findings_for(version: str, blocking: Severity = Severity.high):
    doc = json.loads((FIXTURES / f"{version}.json").read_text())
    return parse_semgrep(attach_lines(doc, FIXTURES / version), blocking)


def test_each_result_becomes_a_high_blocking_finding_with_its_code():
    found = findings_for("v1")

    assert [(f.rule, f.location, f.severity, f.blocking) for f in found] == [
        ("sql-built-from-strings", "app.py:7", Severity.high, True),
        ("subprocess-shell-true", "app.py:15", Severity.high, True),
        ("pickle-loads", "app.py:19", Severity.high, True),
    ]
    assert "f\"SELECT * FROM users WHERE name = '{name}'\"" in found[0].evidence
    assert found[0].kind == "sast" and found[0].data["metadata"]["cwe"].startswith("CWE-89")


def test_fingerprints_survive_inserted_lines_and_reformatted_neighbours():
    before, after = findings_for("v1"), findings_for("v2")

    assert [f.location for f in after] == ["app.py:14", "app.py:25", "app.py:29"]
    assert [f.fingerprint for f in before] == [f.fingerprint for f in after]
    assert len({f.fingerprint for f in before}) == 3


def test_findings_below_the_blocking_severity_are_listed_but_do_not_block():
    found = findings_for("v1", blocking=Severity.critical)

    assert len(found) == 3 and not any(f.blocking for f in found)


def test_semgrep_hides_lines_without_login_so_they_are_read_from_the_file():
    raw = json.loads((FIXTURES / "v1.json").read_text())

    assert raw["results"][0]["extra"]["lines"] == "requires login"
    assert matched_lines(b"a\nxx bad(1) yy\nb\n", 5, 11) == "xx bad(1) yy"


def test_severity_map_covers_classic_and_new_levels():
    assert SEVERITY["ERROR"] is Severity.high and SEVERITY["CRITICAL"] is Severity.critical
    assert SEVERITY["WARNING"] is Severity.medium and SEVERITY["INFO"] is Severity.low


def test_a_rule_parse_error_is_fatal():
    doc = json.loads((FIXTURES / "rule-parse-error.json").read_text())

    assert fatal_errors(doc) == ["Rule parse error: Rule parse error in rule broken: Invalid pattern for Python: "
                                 "Stdlib.Parsing.Parse_error"]


def test_an_invalid_rule_schema_names_what_is_missing_and_where():
    doc = {"errors": [{"code": 4, "level": "error", "type": "InvalidRuleSchemaError",
                       "long_msg": "One of these properties is missing: 'message'", "short_msg": "Invalid rule schema",
                       "spans": [{"file": "/src/rules/custom.yml", "start": {"line": 2, "col": 5}}]}]}

    assert fatal_errors(doc) == ["InvalidRuleSchemaError: One of these properties is missing: 'message' "
                                 "(custom.yml:2)"]


@pytest.mark.parametrize("stdout", ["", "garbage", '{"errors": []}', "[]"])
def test_output_without_results_is_unreadable(stdout):
    with pytest.raises(StageError, match="semgrep output unreadable"):
        load_semgrep_json(stdout, 2, "boom")


def test_excerpt_is_truncated():
    assert len(excerpt("x" * 1000)) == 300


def test_command_is_offline_and_scoped(tmp_path):
    from releasegate.policy import Semgrep

    command = semgrep_command("semgrep", [tmp_path / "r.yml"], Semgrep(rules=["r.yml"]))

    assert {"--metrics=off", "--disable-version-check", "--no-rewrite-rule-ids", "--json"} <= set(command)
    assert command[-1] == "." and command.count("--exclude") == 3
