"""promtool 2.42 output (tests/fixtures/promtool, stdout + newline + stderr) parsed into problems and findings."""

from pathlib import Path

import pytest

from releasegate.errors import StageError
from releasegate.models import Severity
from releasegate.stages.alerts import count_rules, count_tests, finding, parse_check, parse_test

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "promtool"


def out(name: str) -> str:
    return (FIXTURES / f"{name}.out").read_text()


def test_a_valid_rule_file_has_no_problems():
    assert parse_check(out("check-ok"), "rules.yml") == []


def test_each_rule_that_does_not_load_is_a_problem_keyed_by_group_and_name():
    problems = parse_check(out("check-bad"), "bad-rules.yml")

    assert [p.key for p in problems] == ["broken/Broken", "broken/NoExpr"]
    assert "unclosed left parenthesis" in problems[0].title


def test_invalid_yaml_in_a_rule_file_is_one_problem_without_line_numbers_in_its_key():
    problems = parse_check(out("check-badyaml"), "badyaml-rules.yml")

    assert len(problems) == 1 and "line 3" not in problems[0].key


def test_passing_rule_tests():
    assert parse_test(out("test-pass"), "tests-pass.yml").passed


def test_each_failing_alert_test_is_a_problem_with_expected_and_got():
    outcome = parse_test(out("test-fail"), "tests-fail.yml")

    assert not outcome.passed
    assert [p.key for p in outcome.problems] == ["instance down expected too early/InstanceDown",
                                                 "error rate never fires wrongly/HighErrorRate"]
    assert "exp:[" in outcome.problems[0].detail and "got:[]" in outcome.problems[0].detail


def test_a_failing_expression_test_is_keyed_by_its_expression():
    (problem,) = parse_test(out("test-expr"), "tests-expr.yml").problems

    assert problem.key == '"job:http_requests:rate5m"' and "got:" in problem.detail


@pytest.mark.parametrize("name", ["test-badrules", "test-badyaml"])
def test_tests_that_cannot_load_are_one_problem(name):
    (problem,) = parse_test(out(name), f"{name}.yml").problems

    assert problem.rule == "promtool-test-load"


def test_unrecognised_output_is_a_stage_error():
    with pytest.raises(StageError, match="unrecognised output"):
        parse_check(out("missing-file"), "missing.yml")
    with pytest.raises(StageError):
        parse_test("segmentation fault\n", "t.yml")


def test_findings_are_high_blocking_and_fingerprinted_without_line_numbers():
    problems = parse_check(out("check-bad"), "bad-rules.yml")
    found = [finding(p) for p in problems]

    assert all(f.kind == "alert" and f.severity is Severity.high and f.blocking for f in found)
    assert len({f.fingerprint for f in found}) == 2


def test_rule_and_test_counts_from_yaml():
    assert count_rules((FIXTURES / "rules.yml").read_text()) == (2, 3)
    assert count_rules((FIXTURES / "badyaml-rules.yml").read_text()) == (0, 0)
    assert count_tests((FIXTURES / "tests-fail.yml").read_text()) == 3
