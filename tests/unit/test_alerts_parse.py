"""promtool 2.42 and amtool 0.25 output (tests/fixtures/promtool|amtool, stdout + newline + stderr) parsed."""

from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.domain.models import Severity
from releasegate.policy import RouteExpectation
from releasegate.stages.alert_routes import (
    config_finding,
    label_args,
    parse_check_config,
    parse_routes,
    route_finding,
)
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


# --- amtool 0.25 (tests/fixtures/amtool) ------------------------------------------------------------------------

AMTOOL = Path(__file__).resolve().parents[1] / "fixtures" / "amtool"


def amtool_out(name: str) -> str:
    return (AMTOOL / f"{name}.out").read_text()


def test_a_valid_alertmanager_config_has_no_problems():
    assert parse_check_config(amtool_out("check-config-ok"), "alertmanager.yml") == []


@pytest.mark.parametrize(("name", "why"), [("check-config-undefined-receiver", 'undefined receiver "nobody"'),
                                           ("check-config-badyaml", "did not find expected node content")])
def test_a_config_that_does_not_load_says_why(name, why):
    (problem,) = parse_check_config(amtool_out(name), "am.yml")

    assert why in problem
    assert config_finding("am.yml", problem).severity is Severity.high


def test_a_missing_config_is_a_stage_error():
    with pytest.raises(StageError, match="does not exist"):
        parse_check_config(amtool_out("check-config-missing"), "missing.yml")


@pytest.mark.parametrize(("name", "receivers"), [
    ("routes-critical", ["pager"]), ("routes-default", ["null-receiver"]),
    ("routes-misrouted", ["slack-releases"]), ("routes-continue", ["pager", "slack-releases"])])
def test_resolved_receivers(name, receivers):
    assert parse_routes(amtool_out(name), "severity=critical") == receivers


def test_routes_on_a_config_that_does_not_load_are_a_stage_error():
    with pytest.raises(StageError, match='undefined receiver "nobody"'):
        parse_routes(amtool_out("routes-undefined-receiver"), "severity=critical")


def test_a_misroute_is_a_blocking_finding_naming_labels_expected_and_actual():
    expected = RouteExpectation(labels={"severity": "critical", "service": "inventory"}, receivers=["pager"])

    found = route_finding("alerts/alertmanager.yml", expected, parse_routes(amtool_out("routes-misrouted"), "x"))

    assert found.title == "alert {severity=critical, service=inventory} routes to slack-releases, expected pager"
    assert found.blocking and found.severity is Severity.high and found.data["actual"] == ["slack-releases"]


def test_receivers_match_in_any_order():
    expected = RouteExpectation(labels={"severity": "critical"}, receivers=["slack-releases", "pager"])

    assert route_finding("am.yml", expected, parse_routes(amtool_out("routes-continue"), "x")) is None


def test_label_arguments_are_quoted_matchers():
    assert label_args({"severity": "critical", "team": 'a "b", c'}) == ['severity="critical"', 'team="a \\"b\\", c"']
