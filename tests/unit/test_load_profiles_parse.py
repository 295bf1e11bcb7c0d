"""Stress, soak and distributed profiles on recorded Locust output (tests/fixtures/locust/, see its README)."""

from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.domain.models import Severity
from releasegate.policy import Budgets, Load
from releasegate.stages import load_profiles as lp
from releasegate.stages import locust_load

LOCUST = Path(__file__).resolve().parents[1] / "fixtures" / "locust"


def history(name: str) -> list[lp.HistoryRow]:
    return lp.parse_stats_history((LOCUST / f"{name}_stats_history.csv").read_text())


def final_total(name: str) -> int:
    return locust_load.parse_stats_csv((LOCUST / f"{name}_stats.csv").read_text())[lp.AGGREGATED].requests


def stress_load(**stress) -> Load:
    return Load(locustfile="locustfile.py", budgets={"p95_ms": 1000}, profile="stress",
                stress={"start_users": 2, "step_users": 2, "step_duration_s": 3, "max_users": 6, **stress})


# --- parsing ---------------------------------------------------------------------------------------------

def test_history_rows_are_read_per_name_with_cumulative_counts():
    rows = history("stress")
    agg = lp.of_name(rows)
    assert lp.names(rows) == ["/healthz", "/items", "/items/<id>", "/search"]
    assert agg[0].users == 0 and agg[0].p95_ms is None  # the first row is written before any request
    assert [r.requests for r in agg] == sorted(r.requests for r in agg)
    assert agg[-1].requests == final_total("stress")


@pytest.mark.parametrize("text", ["", "Timestamp,User Count\n1,2\n", "garbage", (LOCUST / "run_stats.csv").read_text()])
def test_unreadable_history_is_a_stage_error(text):
    with pytest.raises(StageError):
        lp.parse_stats_history(text)


def test_time_series_is_seconds_from_the_first_row():
    series = lp.time_series(history("soak"))
    assert series["t_s"][0] == 0 and series["t_s"] == sorted(series["t_s"])
    assert len(series["t_s"]) == len(series["p95_ms"]) == len(series["rps"]) == len(series["users"])
    assert series["requests"][-1] == final_total("soak")


# --- stress --------------------------------------------------------------------------------------------

def test_stress_steps_follow_the_user_count_and_add_up_to_the_run():
    rows = history("stress")
    steps = lp.stress_steps(rows, [2, 4, 6])
    assert [s.users for s in steps] == [2, 4, 6]
    assert sum(s.requests for s in steps) == lp.of_name(rows)[-1].requests
    assert all(a.end_s == b.start_s for a, b in zip(steps, steps[1:]))
    for step in steps:  # each step's p95 is the one Locust wrote in the last row of that step
        last = max((r for r in lp.of_name(rows) if r.users == step.users), key=lambda r: r.timestamp)
        assert step.p95_ms == last.p95_ms


def test_stress_that_reaches_max_users_without_a_breach_holds():
    outcome = lp.stress_outcome(history("stress"), [2, 4, 6], Budgets(p95_ms=1000, error_rate=0.01), {})
    assert outcome.broke_at is None and outcome.capacity.users == 6
    finding = locust_load.capacity_finding(stress_load(), outcome)
    assert (finding.rule, finding.severity, finding.blocking) == ("stress-held", Severity.info, False)
    assert "max_users reached without a breach" in finding.title


def test_breaking_point_is_the_first_step_over_budget_and_capacity_the_step_before():
    outcome = lp.stress_outcome(history("stress"), [2, 4, 6], Budgets(p95_ms=10), {})
    assert outcome.steps[outcome.broke_at].users == 4  # recorded p95: 7 ms at 2 users, 11 ms at 4
    assert outcome.capacity.users == 2 and outcome.capacity.p95_ms == 7
    assert outcome.breaches[0].budget == "p95_ms" and outcome.breaches[0].value == 11
    finding = locust_load.capacity_finding(stress_load(), outcome)
    assert (finding.severity, finding.blocking) == (Severity.low, False)
    assert "held every budget up to 2 users" in finding.title and "breaks at 4 users" in finding.title


def test_breaking_below_the_required_users_blocks():
    outcome = lp.stress_outcome(history("stress"), [2, 4, 6], Budgets(p95_ms=10), {})
    load = stress_load(min_users_before_break=6)
    finding = locust_load.capacity_finding(load, outcome)
    assert finding.blocking and finding.severity == load.severity
    metric = next(m for m in locust_load.stress_metrics(outcome, 6) if m.name == "stress.breaking_users")
    assert (metric.value, metric.passed) == (4, False)


def test_endpoint_budgets_count_for_the_breaking_point():
    outcome = lp.stress_outcome(history("stress"), [2, 4, 6], Budgets(p95_ms=1000), {"/healthz": Budgets(p99_ms=1)})
    assert outcome.broke_at == 0 and outcome.capacity is None
    assert outcome.breaches[0].scope == "/healthz"


def test_throughput_floor_does_not_break_a_stress_step():
    outcome = lp.stress_outcome(history("stress"), [2, 4, 6], Budgets(min_rps=1000), {})
    assert outcome.broke_at is None


# --- soak ----------------------------------------------------------------------------------------------

def test_soak_windows_cover_the_run_and_compare_first_and_last():
    rows = history("soak")
    windows = lp.soak_windows(rows, 4)
    assert len(windows) == 3 and [w.start_s for w in windows] == [0, 4, 8]
    assert sum(w.requests for w in windows) == lp.of_name(rows)[-1].requests
    assert lp.drift_ratio(windows) == windows[-1].p95_ms / windows[0].p95_ms


def test_drift_needs_two_windows_with_traffic():
    assert lp.drift_ratio(lp.soak_windows(history("soak"), 30)) is None


def test_memory_summary_reports_first_last_max_and_growth():
    summary = lp.memory_summary([(0, 50.0), (1, 80.0), (2, 62.5)])
    assert summary == {"first_mb": 50.0, "last_mb": 62.5, "max_mb": 80.0, "growth_mb": 12.5, "samples": 3}
    assert lp.memory_summary([]) is None


def test_soak_breaches_are_blocking_findings():
    load = Load(locustfile="l.py", budgets={}, profile="soak", duration_s=12,
                soak={"window_s": 4, "max_p95_drift_ratio": 1.2, "max_memory_growth_mb": 10})
    windows = lp.soak_windows(history("soak"), 4)
    checks = locust_load.soak_checks(load.soak_spec(), windows, 1.5, {"growth_mb": 25.0})
    findings = [locust_load.soak_finding(load, *c) for c in checks if c[1] > c[2]]
    assert [f.rule for f in findings] == ["p95_drift_ratio", "rss_growth_mb"]
    assert all(f.blocking and f.severity == load.severity for f in findings)


# --- command line and policy ---------------------------------------------------------------------------

def test_stress_passes_the_shape_file_and_its_steps_through_the_environment(tmp_path):
    load = stress_load()
    argv = locust_load.locust_argv(load, tmp_path / "locustfile.py", "http://127.0.0.1:1", tmp_path / "run1")
    files = argv[argv.index("-f") + 1].split(",")
    assert files[0].endswith("locustfile.py") and Path(files[1]).name == "releasegate_stress_shape.py"
    assert "-u" not in argv and "-t" not in argv  # the shape sets users and ends the run
    env = locust_load.locust_env(load)
    assert env["RELEASEGATE_STRESS_MAX_USERS"] == "6" and env["RELEASEGATE_PERCENTILE_WINDOW_S"] == "3"
    assert locust_load.planned_seconds(load) == 9


@pytest.mark.parametrize(("workers", "flag"), [("auto", "-1"), (2, "2")])
def test_distributed_runs_worker_processes(tmp_path, workers, flag):
    load = Load(locustfile="l.py", budgets={}, distributed={"workers": workers})
    argv = locust_load.locust_argv(load, tmp_path / "l.py", "http://127.0.0.1:1", tmp_path / "run1")
    assert argv[argv.index("--processes") + 1] == flag


def test_default_load_profile_adds_no_helper_files(tmp_path):
    load = Load(locustfile="l.py", budgets={})
    argv = locust_load.locust_argv(load, tmp_path / "l.py", "http://127.0.0.1:1", tmp_path / "run1")
    assert argv[argv.index("-f") + 1] == str(tmp_path / "l.py") and locust_load.locust_env(load) == {}


@pytest.mark.parametrize("spec", [
    {"profile": "load", "stress": {}},
    {"profile": "soak", "duration_s": 10, "soak": {"window_s": 6}},
    {"profile": "stress", "stress": {"start_users": 10, "max_users": 5}},
    {"distributed": {"workers": 0}},
])
def test_inconsistent_profile_settings_are_rejected(spec):
    with pytest.raises(ValueError):
        Load(locustfile="l.py", budgets={}, **spec)
