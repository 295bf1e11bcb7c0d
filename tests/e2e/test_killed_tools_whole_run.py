"""The faults that turned the healthy demo into a false GO, through whole CLI runs: a tool that printed valid
output and was then killed, and a rerun into the same evidence folder with a Locust that writes nothing.
Each run ends INCONCLUSIVE (exit 3) with the fault named, has its verdict row, and leaves no process behind.
A Slack outage leaves the verdict alone and the message pending, never lost."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.demo import processes_under
from tests.support.fake_tools import fake_tool, tool_variable
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SEMGREP_DOC = json.dumps({"version": "1.185.0", "results": [], "errors": [], "paths": {"scanned": ["app.py"]}})
PROMTOOL_ANSWER = 'emit(None, CHECK if ARGS[0] == "check" else TEST)'


def gate(policy: Path, home: Path, *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    proc = subprocess.run([str(BIN / "releasegate"), "run", "--policy", str(policy), "--version", "1.0.0", "--json",
                           *extra], capture_output=True, text=True, timeout=600, check=False,
                          env={**os.environ, "RELEASEGATE_HOME": str(home), **(env or {})})
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout)


def recorded(home: Path, run_id: str) -> str | None:
    proc = subprocess.run([str(BIN / "releasegate"), "runs", "--json", "--limit", "50"], capture_output=True,
                          text=True, timeout=60, check=True, env={**os.environ, "RELEASEGATE_HOME": str(home)})
    return next((r.get("decision") for r in json.loads(proc.stdout) if r["run_id"] == run_id), None)




@pytest.mark.parametrize(("tool", "answer", "outputs", "ending", "stage"), [
    ("semgrep", "emit(None, DOC)", {"DOC": SEMGREP_DOC}, "sigkill", "semgrep"),
    ("semgrep", "emit(None, DOC)", {"DOC": SEMGREP_DOC}, "exit137", "semgrep"),
    ("promtool", PROMTOOL_ANSWER, {"CHECK": (FIXTURES / "promtool/check-ok.out").read_text(),
                                   "TEST": (FIXTURES / "promtool/test-pass.out").read_text()}, "exit137", "alerts"),
], ids=["semgrep-sigkill", "semgrep-exit137", "promtool-exit137"])
def test_a_tool_killed_after_valid_output_makes_the_run_inconclusive(quick_policy, tmp_path, tool, answer, outputs,
                                                                     ending, stage):
    home = tmp_path / "home"
    fake = fake_tool(tmp_path / "bin", tool, answer, outputs, output="full", ending=ending)
    code, data = gate(quick_policy, home, env={tool_variable(tool): str(fake)})
    assert (code, data["decision"]) == (3, "INCONCLUSIVE")
    reasons = [r["message"] for r in data["reasons"] if r["stage"] == stage]
    assert reasons and any("killed by SIGKILL" in m for m in reasons), data["reasons"]
    assert recorded(home, data["run_id"]) == "INCONCLUSIVE"
    assert processes_under(home) == []


def test_a_rerun_never_reads_the_previous_runs_load_evidence(quick_policy, tmp_path):
    home, evidence = tmp_path / "home", tmp_path / "evidence"
    code, first = gate(quick_policy, home, "--evidence-dir", str(evidence))
    assert (code, first["decision"]) == (0, "GO")
    silent = fake_tool(tmp_path / "bin", "locust", "pass", output="none", ending="exit0")
    code, second = gate(quick_policy, home, "--evidence-dir", str(evidence), env={tool_variable("locust"): str(silent)})
    assert (code, second["decision"]) == (3, "INCONCLUSIVE")
    assert any(r["stage"] == "locust" for r in second["reasons"]), second["reasons"]
    assert recorded(home, second["run_id"]) == "INCONCLUSIVE"
    assert processes_under(home) == []


def test_a_slack_outage_keeps_the_verdict_and_the_message_pending(quick_policy, tmp_path):
    import yaml

    policy = yaml.safe_load(quick_policy.read_text())
    policy.setdefault("notify", {})["slack"] = {"channel": "#releases"}
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    home = tmp_path / "home"
    with SlackServer() as slack:
        slack.fail_next(503, times=100)
        code, data = gate(path, home, env={"RELEASEGATE_SLACK_TOKEN": slack.token,
                                           "RELEASEGATE_SLACK_BASE_URL": slack.url})
    assert (code, data["decision"]) == (0, "GO")
    assert data["notification"] != "sent"
    assert recorded(home, data["run_id"]) == "GO"
    with SlackServer() as slack:
        proc = subprocess.run([str(BIN / "releasegate"), "notify", "--pending"], capture_output=True, text=True,
                              timeout=120, check=False,
                              env={**os.environ, "RELEASEGATE_HOME": str(home), "RELEASEGATE_SLACK_TOKEN": slack.token,
                                   "RELEASEGATE_SLACK_BASE_URL": slack.url})
        assert proc.returncode == 0, proc.stderr[-2000:]
        (message,) = slack.top_level()                         # one verdict message, its details in the thread
        assert [r["text"].split(":")[0] for r in slack.replies(message["ts"])] == ["GO"]
    assert processes_under(home) == []
