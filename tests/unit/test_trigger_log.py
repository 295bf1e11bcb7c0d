"""What `releasegate trigger` says when a DAG run ended without a verdict: the failed task's own exception."""

from releasegate.airflow_glue.trigger import answer, has_verdict, last_error

TASK_LOG = [
    {"timestamp": "2026-12-01T03:19:02Z", "level": "info", "event": "::endgroup::"},
    {"timestamp": "2026-12-01T03:19:03Z", "level": "error", "event": "Task failed with exception",
     "error_detail": [{"exc_type": "AirflowFailException",
                       "exc_value": "policy error (not retried): gate.yaml:2: suites_typo: unknown key — did you "
                                    "mean 'suites'?", "frames": []}]},
    {"timestamp": "2026-12-01T03:19:03Z", "level": "info", "event": "::group::Post Execute"},
]


def test_the_failed_tasks_exception_is_the_cause():
    assert last_error(TASK_LOG) == ("AirflowFailException: policy error (not retried): gate.yaml:2: suites_typo: "
                                    "unknown key — did you mean 'suites'?")


def test_without_exception_detail_the_last_error_event():
    assert last_error([{"level": "info", "event": "a"}, {"level": "error", "event": "disk  full"}]) == "disk full"


def test_a_run_without_a_verdict_is_inconclusive_and_says_why():
    final = {"state": "failed"}
    data = answer("run-1", final, "task compile_report failed: OSError: No space left on device")
    assert not has_verdict(final)
    assert (data["decision"], data["dag_run_state"], data["dag_run_id"]) == ("INCONCLUSIVE", "failed", "run-1")
    assert "No space left on device" in data["reasons"][0]["message"]
