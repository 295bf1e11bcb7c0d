"""What the DAG's glue gives operators: folded log sections, a policy measured against the tasks' ceiling, and the
asset event's extra."""

import logging
from datetime import timedelta

from releasegate.airflow_glue import release_ready
from releasegate.airflow_glue.log_groups import emit, log_groups
from releasegate.airflow_glue.timeouts import declared_seconds, over_ceiling
from releasegate.domain.models import Artifact, Status, TestCase
from releasegate.policy import load_policy
from tests.support.builders import stage_result
from tests.support.demo import DEMO_POLICY


def test_failing_tests_and_each_tool_outputs_tail_are_sections(tmp_path):
    output = tmp_path / "output-1.log"
    output.write_text("".join(f"line {i}\n" for i in range(100)))
    (tmp_path / "junit-1.xml").write_text("<testsuite/>")
    result = stage_result("pytest[unit]", "suite", Status.failed, test_cases=[
        TestCase(node_id="tests/test_a.py::test_ok", outcome="passed"),
        TestCase(node_id="tests/test_a.py::test_total", outcome="failed", message="AssertionError: 3 != 4\nmore"),
    ], artifacts=[Artifact.of(output), Artifact.of(tmp_path / "junit-1.xml")])

    groups = dict(log_groups(result))

    assert groups["pytest[unit]: 1 failing test(s)"] == ["FAILED tests/test_a.py::test_total",
                                                        "    AssertionError: 3 != 4", "    more"]
    tail = groups["pytest[unit]: last 40 lines of output-1.log"]
    assert tail[0] == "line 60" and tail[-1] == "line 99" and len(tail) == 40
    assert len(groups) == 2, "the JUnit file is not tool output"


def test_a_tool_output_on_another_worker_is_said_not_hidden(tmp_path):
    result = stage_result("semgrep", "sast", artifacts=[Artifact(name="semgrep.log", path=str(tmp_path / "gone.log"),
                                                                 sha256="0" * 64)])
    [(title, lines)] = log_groups(result)
    assert "cannot be read on this worker" in lines[0]


def test_sections_open_and_close_in_the_log(caplog):
    log = logging.getLogger("releasegate.test-groups")
    with caplog.at_level(logging.INFO, logger=log.name):
        emit([("a: title", ["x", "y"]), ("b: title", [])], log)
    assert caplog.messages == ["::group::a: title", "x", "y", "::endgroup::", "::group::b: title", "::endgroup::"]


def test_the_demo_policy_fits_the_default_ceiling_and_a_tight_one_names_the_stages():
    policy = load_policy(DEMO_POLICY)
    assert over_ceiling(policy, timedelta(hours=4)) == []
    refused = over_ceiling(policy, timedelta(seconds=60))
    assert any(m.startswith("pytest[unit]: the policy allows its tools 900 s") for m in refused), refused
    assert all("RELEASEGATE_STAGE_TIMEOUT_MINUTES" in m for m in refused)


def test_declared_seconds_sum_nested_timeouts_and_durations():
    policy = load_policy(DEMO_POLICY)
    assert declared_seconds(policy.chaos) >= policy.chaos.timeout_s > 0
    assert declared_seconds(policy.load) >= policy.load.duration_s + policy.load.timeout_s
    assert declared_seconds(policy.suites) == sum(s.timeout_s for s in policy.suites)


def test_the_release_ready_event_says_what_is_ready():
    ctx = {"service": "inventory", "version": "1.0.0", "run_id": "release_gate__manual__1"}
    outcome = {"decision": "GO", "service": "inventory", "version": "1.0.0", "run_id": "release_gate__manual__1",
               "report": "/evidence/report.html"}
    assert release_ready(ctx, outcome, "manual__1") == {
        "service": "inventory", "version": "1.0.0", "run_id": "release_gate__manual__1",
        "airflow_run_id": "manual__1", "decision": "GO", "report": "/evidence/report.html"}
