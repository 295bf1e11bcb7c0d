"""Fault matrix: every stage against a tool that is missing, killed, hanging, lying or stale.

Each stage function is called directly with a fake tool (tests/support/fake_tools.py) that answers like
the real one and then misbehaves. Whatever the fake printed, the stage must end `error` (INCONCLUSIVE),
never `passed`, and its reason must name the tool and the fault. `test_behaves` runs the same fakes
behaving and must pass: so in every row of `test_fault` the fault, and only the fault, makes the difference.
A tool whose exit status contradicts its output (lying) is an error too, where the tool documents both.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import yaml

from releasegate.context import RunContext
from releasegate.domain.models import StageResult, Status
from releasegate.environment import Environment
from releasegate.policy import Policy, load_policy
from releasegate.servers.osv_mirror import OsvMirror
from releasegate.stages import alerts, chaos, locust_load, pip_audit, pytest_suites, semgrep
from releasegate.tools import tool_versions
from tests.support.fake_tools import fake_tool, tool_variable

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
pytestmark = pytest.mark.timeout(60)

# fault -> (what the fake writes, how it ends); `missing` has no fake at all
FAULTS = {
    "missing": ("full", "exit0"),
    "exit137": ("full", "exit137"),
    "sigkill": ("full", "sigkill"),
    "timeout": ("full", "hang"),
    "truncated": ("truncated", "exit0"),
    "empty": ("empty", "exit0"),
    "stale": ("none", "exit0"),
}
# what every stage's reason says for the faults that are about how the tool ended
ENDED = {
    "missing": r"not an executable file|cannot start",
    "exit137": r"was killed by SIGKILL \(exit 137\) after [\d.]+ s",
    "sigkill": r"was killed by SIGKILL \(signal 9\) after [\d.]+ s",
    "timeout": r"timed out after [\d.]+ s and was stopped",
}
TIMEOUT_S = 1.0  # the policy's timeout in the `timeout` row: the fake hangs for 30 s
# the "service" is this test process: it runs throughout, so no stage reports it stopped
IDLE = Environment(host="127.0.0.1", port=9, base_url="http://127.0.0.1:9", pid=os.getpid(),
                   pid_created=psutil.Process().create_time(), log_path="-", env={})


@dataclass(frozen=True)
class Rig:
    """One stage wired to a fake tool."""

    tool: str                                        # the fake's name, as the reason must name it
    answer: str                                      # what the fake does when it behaves (see fake_tools)
    outputs: dict[str, str]                          # the real tool's output, as constants for `answer`
    policy: Callable[[Path, float, str], dict]       # (fake tool, timeout_s, OSV URL) -> gate.yaml
    run: Callable[[Policy, RunContext], StageResult]
    stale: dict[str, str]                            # evidence file -> output name, left by an earlier attempt
    unreadable: dict[str, str]                       # truncated / empty / stale -> what the reason says
    files: dict[str, str] = field(default_factory=dict)  # the service source
    looked_up: bool = True                           # found via RELEASEGATE_<TOOL>_BIN, not named in the policy
    companions: tuple[str, ...] = ()                 # other tools of the stage, behaving


def fixture(path: str) -> str:
    return (FIXTURES / path).read_text(encoding="utf-8")


JUNIT = ('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="1">'
         '<testcase classname="tests.test_app" name="test_ok" time="0.001"><properties>'
         '<property name="nodeid" value="tests/test_app.py::test_ok" /></properties></testcase>'
         "</testsuite></testsuites>\n")
SESSION = json.dumps({"collected": 1, "finished": 1, "interrupted": "", "exitstatus": 0, "failed": 0})
SEMGREP_DOC = json.dumps({"version": "1.185.0", "results": [], "errors": [], "paths": {"scanned": ["app.py"]}})
PIP_AUDIT_DOC = json.dumps({"dependencies": [{"name": "requests", "version": "2.31.0", "vulns": []}], "fixes": []})
ALERT_FILES = {"rules.yml": fixture("promtool/rules.yml"), "tests.yml": fixture("promtool/tests-pass.yml"),
               "alertmanager.yml": fixture("amtool/alertmanager.yml")}
PROMTOOL_ANSWER = 'emit(None, CHECK if ARGS[0] == "check" else TEST)'
PROMTOOL_OUTPUTS = {"CHECK": fixture("promtool/check-ok.out"), "TEST": fixture("promtool/test-pass.out")}


def alerts_policy(timeout: float, alertmanager: bool) -> dict:
    spec: dict = {"rule_files": ["rules.yml"], "tests": ["tests.yml"], "timeout_s": timeout}
    if alertmanager:
        spec["alertmanager"] = {"config": "alertmanager.yml",
                                "routes": [{"labels": {"severity": "critical"}, "receivers": ["pager"]}]}
    return {"service": "svc", "alerts": spec}


RIGS = {
    "pytest": Rig(
        tool="pytest", looked_up=False,
        # the gate's plugin records the finished session whatever the JUnit XML holds
        answer='emit(option("--junitxml"), JUNIT)\n'
               'with open(os.environ["RELEASEGATE_PYTEST_SESSION"], "w") as record:\n'
               '    record.write(SESSION)',
        outputs={"JUNIT": JUNIT, "SESSION": SESSION},
        policy=lambda tool, timeout, _: {"service": "svc", "suites": [
            {"name": "unit", "command": [str(tool)], "paths": ["tests"], "timeout_s": timeout}]},
        run=lambda policy, ctx: pytest_suites.run(policy, ctx, policy.suites[0], None),
        stale={"pytest/unit/junit-1.xml": "JUNIT"},
        unreadable={"truncated": r"JUnit XML cannot be read", "empty": r"JUnit XML cannot be read",
                    "stale": r"wrote no JUnit XML"}),
    "locust": Rig(
        tool="locust",
        answer='prefix = option("--csv")\n'
               'emit(prefix + "_stats.csv", STATS)\n'
               'emit(prefix + "_stats_history.csv", HISTORY)\n'
               'emit(prefix + ".json", REPORT)',
        outputs={"STATS": fixture("locust/soak_stats.csv"), "HISTORY": fixture("locust/soak_stats_history.csv"),
                 "REPORT": fixture("locust/soak.json")},
        policy=lambda _, timeout, __: {
            "service": "svc", "environment": {"start": "true", "health": {"url": "http://{host}:{port}/"}},
            "load": {"locustfile": "locustfile.py", "users": 1, "duration_s": 0.01, "min_requests": 1,
                     "remeasure_cooldown_s": 0, "timeout_s": timeout,
                     "budgets": {"p95_ms": 10000, "error_rate": 0.5}}},
        run=lambda policy, ctx: locust_load.run(policy, ctx, IDLE),
        files={"locustfile.py": "# the fake locust does not read it\n"},
        stale={"locust/run1_stats.csv": "STATS", "locust/run1_stats_history.csv": "HISTORY",
               "locust/run1.json": "REPORT"},
        unreadable={"truncated": r"cannot be read|no 'Aggregated' row", "empty": r"run1_stats\.csv is empty",
                    "stale": r"wrote no run1_stats\.csv"}),
    "chaos": Rig(
        tool="chaos",
        answer='emit(option("--journal-path"), JOURNAL)',
        outputs={"JOURNAL": fixture("chaos/held-warehouse-down.journal.json")},
        policy=lambda _, timeout, __: {"service": "svc", "chaos": {
            "timeout_s": timeout, "experiments": [{"name": "probe", "file": "experiment.json"}]}},
        run=lambda policy, ctx: chaos.run(policy, ctx, IDLE),
        files={"experiment.json": json.dumps({"title": "probe", "method": []})},
        stale={"chaos/probe.journal.json": "JOURNAL"},
        unreadable={"truncated": r"journal .* cannot be read", "empty": r"journal .* cannot be read",
                    "stale": r"wrote no journal"}),
    "semgrep": Rig(
        tool="semgrep",
        answer="emit(None, DOC)", outputs={"DOC": SEMGREP_DOC},
        policy=lambda _, timeout, __: {"service": "svc", "scans": {"semgrep": {"rules": ["rules.yml"],
                                                                               "timeout_s": timeout}}},
        run=semgrep.run,
        files={"rules.yml": "rules: []\n", "app.py": "print('hello')\n"},
        stale={"semgrep/semgrep.json": "DOC"},
        unreadable={"truncated": r"semgrep output unreadable", "empty": r"semgrep printed nothing",
                    "stale": r"semgrep printed nothing"}),
    "pip-audit": Rig(
        tool="pip-audit",
        answer='emit(option("-o"), REPORT)', outputs={"REPORT": PIP_AUDIT_DOC},
        policy=lambda _, timeout, osv_url: {"service": "svc", "scans": {"pip_audit": {
            "requirements": ["requirements.txt"], "osv_url": osv_url, "timeout_s": timeout}}},
        run=pip_audit.run,
        files={"requirements.txt": "requests==2.31.0\n"},
        stale={"pip-audit/pip-audit.json": "REPORT"},
        unreadable={"truncated": r"wrote no readable report", "empty": r"wrote no readable report",
                    "stale": r"wrote no readable report"}),
    "promtool": Rig(
        tool="promtool",
        answer=PROMTOOL_ANSWER, outputs=PROMTOOL_OUTPUTS,
        policy=lambda _, timeout, __: alerts_policy(timeout, alertmanager=False),
        run=alerts.run, files=ALERT_FILES,
        stale={"alerts/promtool-check-0.log": "CHECK", "alerts/promtool-test-0.log": "TEST"},
        unreadable={"truncated": r"unrecognised output", "empty": r"unrecognised output: no output",
                    "stale": r"unrecognised output: no output"}),
    "amtool": Rig(
        tool="amtool", companions=("promtool",),
        answer='emit(None, CHECKED if ARGS[0] == "check-config" else "pager\\n")',
        outputs={"CHECKED": "Checking 'alertmanager.yml'  SUCCESS\n"},
        policy=lambda _, timeout, __: alerts_policy(timeout, alertmanager=True),
        run=alerts.run, files=ALERT_FILES,
        stale={"alerts/amtool-check-config.log": "CHECKED"},
        unreadable={"truncated": r"unrecognised output", "empty": r"unrecognised output: no output",
                    "stale": r"unrecognised output: no output"}),
}


@pytest.fixture(scope="module")
def osv_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An OSV endpoint on loopback that knows no advisory: pip-audit's preflight query must be answered."""
    data = tmp_path_factory.mktemp("osv") / "none.jsonl"
    data.write_text("", encoding="utf-8")
    with OsvMirror(data) as mirror:
        yield mirror.url


@pytest.fixture(autouse=True)
def no_process_left_behind() -> Iterator[None]:
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    yield
    left = [p for p in psutil.Process().children(recursive=True)
            if p.pid not in before and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"processes left behind: {[(p.pid, p.cmdline()) for p in left]}"


def run_context(policy: Policy, evidence: Path) -> RunContext:
    """A run on the service source in place (no workspace copy), its evidence in `evidence`."""
    return RunContext(run_id="rg-fault", service="svc", version="1.0.0", policy_path=str(policy.path),
                      evidence_dir=str(evidence), workspace=str(policy.base_dir), started=datetime.now(UTC))


def run_stage(stage: str, fault: str | None, tmp_path: Path, osv_url: str, monkeypatch: pytest.MonkeyPatch,
              ending: str | None = None) -> StageResult:
    """The stage with its fake tool misbehaving as the fault says (None: behaving; `ending` overrides its ending)."""
    rig = RIGS[stage]
    bin_dir, source = tmp_path / "bin", tmp_path / "svc"
    source.mkdir()
    for name, text in rig.files.items():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        (source / name).write_text(text, encoding="utf-8")
    output, usual_ending = FAULTS[fault] if fault else ("full", "exit0")
    ending = ending or usual_ending
    tool = (bin_dir / f"no-such-{rig.tool}" if fault == "missing" else
            fake_tool(bin_dir, rig.tool, rig.answer, rig.outputs, output=output, ending=ending))
    if rig.looked_up:
        monkeypatch.setenv(tool_variable(rig.tool), str(tool))
    for name in rig.companions:
        helper = RIGS[name]
        monkeypatch.setenv(tool_variable(name), str(fake_tool(bin_dir, name, helper.answer, helper.outputs)))
    timeout = TIMEOUT_S if fault == "timeout" else 60
    (source / "gate.yaml").write_text(yaml.safe_dump(rig.policy(tool, timeout, osv_url)), encoding="utf-8")
    policy = load_policy(source / "gate.yaml")
    ctx = run_context(policy, tmp_path / "evidence")
    if fault == "stale":
        for name, output_name in rig.stale.items():
            (ctx.evidence / name).parent.mkdir(parents=True, exist_ok=True)
            (ctx.evidence / name).write_text(rig.outputs[output_name], encoding="utf-8")
    return rig.run(policy, ctx)


@pytest.mark.parametrize("stage", list(RIGS))
def test_behaves(stage: str, tmp_path: Path, osv_url: str, monkeypatch: pytest.MonkeyPatch):
    result = run_stage(stage, None, tmp_path, osv_url, monkeypatch)

    assert result.status is Status.passed, result.error or result.summary


@pytest.mark.parametrize(("stage", "fault"), [(s, f) for s in RIGS for f in FAULTS],
                         ids=[f"{s}-{f}" for s in RIGS for f in FAULTS])
def test_fault(stage: str, fault: str, tmp_path: Path, osv_url: str, monkeypatch: pytest.MonkeyPatch):
    rig = RIGS[stage]

    result = run_stage(stage, fault, tmp_path, osv_url, monkeypatch)

    assert result.status is Status.error, f"{fault} gave {result.status.value}: {result.summary}"
    assert rig.tool in result.error, result.error
    assert re.search(ENDED.get(fault) or rig.unreadable[fault], result.error), result.error


def test_a_runner_writing_its_own_junit_is_never_judged_by_an_earlier_runs_file(tmp_path: Path):
    """A suite with `junit:` (a runner other than pytest) writes its XML into the source: a file left there by an
    earlier run must not stand in for a run that wrote nothing."""
    source = tmp_path / "svc"
    (source / "reports").mkdir(parents=True)
    (source / "reports" / "junit.xml").write_text(JUNIT, encoding="utf-8")
    tool = fake_tool(tmp_path / "bin", "runner", "emit('reports/junit.xml', JUNIT)", {"JUNIT": JUNIT}, output="none")
    (source / "gate.yaml").write_text(yaml.safe_dump({"service": "svc", "suites": [
        {"name": "legacy", "kind": "other", "command": [str(tool)], "junit": "reports/junit.xml"}]}), encoding="utf-8")
    policy = load_policy(source / "gate.yaml")
    ctx = run_context(policy, tmp_path / "evidence")

    result = pytest_suites.run(policy, ctx, policy.suites[0], None)

    assert result.status is Status.error, result.summary
    assert "runner exited 0" in result.error and "wrote no JUnit XML" in result.error


@pytest.mark.parametrize("stage", ["chaos", "promtool", "amtool"])
def test_an_exit_status_that_contradicts_the_output_is_an_error(stage: str, tmp_path: Path, osv_url: str,
                                                                 monkeypatch: pytest.MonkeyPatch):
    """These tools exit 1 exactly when their output says something failed: SUCCESS (or a journal that held)
    with exit 1 is a lie one way or the other."""
    result = run_stage(stage, None, tmp_path, osv_url, monkeypatch, ending="exit1")

    assert result.status is Status.error, result.summary
    assert re.search(r"exited 1 after [\d.]+ s but .* disagree", result.error), result.error


@pytest.mark.parametrize("ending", ["exit137", "sigkill"])
def test_a_tool_killed_while_printing_its_version_records_no_version(ending: str, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch):
    tool = fake_tool(tmp_path, "promtool", "emit(None, 'promtool, version 2.42.0\\n')", ending=ending)
    monkeypatch.setenv(tool_variable("promtool"), str(tool))

    assert tool_versions()["promtool"] == "unavailable"
