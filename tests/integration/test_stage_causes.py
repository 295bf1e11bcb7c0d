"""Locust and Semgrep name the cause of a non-pass with the real tools: a service that stopped under load (its last
log lines), a rule file semgrep refused (its own words, the file and the line)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil
import pytest
import yaml

from releasegate.context import RunContext
from releasegate.domain.models import Status
from releasegate.environment import Environment, free_port
from releasegate.policy import load_policy
from releasegate.stages import locust_load, semgrep

pytestmark = pytest.mark.timeout(180)

SERVICE = """\
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

served = 0


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        global served
        served += 1
        if served > 30:
            print("FATAL: worker ran out of memory serving /items", flush=True)
            os._exit(1)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


print("listening", flush=True)
HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""
LOCUSTFILE = """\
from locust import HttpUser, constant, task


class Shopper(HttpUser):
    wait_time = constant(0.05)

    @task
    def items(self):
        self.client.get("/items")
"""


def context(policy, source: Path, evidence: Path) -> RunContext:
    return RunContext(run_id="rg-causes", service="svc", version="1.0", policy_path=str(policy.path),
                      evidence_dir=str(evidence), workspace=str(source), started=datetime.now(UTC))


def test_a_service_that_stopped_under_load_is_named_with_its_last_log_lines(tmp_path):
    source = tmp_path / "svc"
    source.mkdir()
    (source / "locustfile.py").write_text(LOCUSTFILE)
    (source / "gate.yaml").write_text(yaml.safe_dump({
        "service": "svc", "environment": {"start": "true", "health": {"url": "http://{host}:{port}/"}},
        "load": {"locustfile": "locustfile.py", "users": 2, "duration_s": 3, "min_requests": 1,
                 "remeasure_cooldown_s": 0, "budgets": {"p95_ms": 5000}}}))
    policy = load_policy(source / "gate.yaml")
    port, log_path = free_port(), tmp_path / "service.log"
    with open(log_path, "wb") as out:
        service = subprocess.Popen([sys.executable, "-c", SERVICE, str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        env = Environment(host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}", pid=service.pid,
                          pid_created=psutil.Process(service.pid).create_time(), log_path=str(log_path), env={})
        deadline = time.monotonic() + 30
        while "listening" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        result = locust_load.run(policy, context(policy, source, tmp_path / "evidence"), env)
    finally:
        if service.poll() is None:
            service.send_signal(signal.SIGKILL)
        service.wait(timeout=10)

    assert result.status is Status.failed, result.error or result.summary
    stopped = result.findings[0]
    assert stopped.blocking and stopped.title.startswith(
        f"the service stopped during the load test: the service (pid {service.pid}) is no longer running, exited 1; "
        "its last log lines: ")
    assert stopped.title.endswith("listening | FATAL: worker ran out of memory serving /items")
    assert stopped.title in result.summary


def test_a_rule_file_semgrep_refuses_is_named_with_semgreps_words_and_the_line(tmp_path):
    source = tmp_path / "svc"
    source.mkdir()
    (source / "app.py").write_text("print('hello')\n")
    (source / "rules.yml").write_text("rules:\n  - id: no-print\n    pattern: print(...)\n    languages: [python]\n"
                                      "    severity: ERROR\n")
    (source / "gate.yaml").write_text(yaml.safe_dump({"service": "svc", "scans": {"semgrep": {"rules": ["rules.yml"]}}}))
    policy = load_policy(source / "gate.yaml")

    result = semgrep.run(policy, context(policy, source, tmp_path / "evidence"))

    assert result.status is Status.error
    assert result.error.startswith("semgrep could not scan (semgrep exited 7 after ")
    assert "InvalidRuleSchemaError: One of these properties is missing: 'message' (rules.yml:2)" in result.error
    assert "fix the rule files (scans.semgrep.rules)" in result.error
