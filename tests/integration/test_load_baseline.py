"""The load test against the service's last GO, with real Locust on a small service of the test's own whose latency
the test sets: a p95 that rose beyond the policy's allowed change blocks though it is far under the budget, and
the reason gives the value, the baseline and the change. Samples live in the gate database (SQLite, PostgreSQL)."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psutil
import pytest

from releasegate.context import RunContext
from releasegate.domain.models import Decision, Status
from releasegate.domain.verdict import ExpectedStage, decide
from releasegate.environment import Environment
from releasegate.policy import Policy
from releasegate.records import store
from releasegate.stages import locust_load

pytestmark = pytest.mark.timeout(180)

LOCUSTFILE = """
from locust import HttpUser, constant, task


class Reader(HttpUser):
    wait_time = constant(0.05)

    @task
    def read(self):
        self.client.get("/items")
"""


class SlowService(ThreadingHTTPServer):
    delay_s = 0.005


class Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        time.sleep(self.server.delay_s)  # type: ignore[attr-defined]
        body = b'{"items": []}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def service(tmp_path: Path):
    server = SlowService(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    (tmp_path / "svc").mkdir()
    (tmp_path / "svc" / "locustfile.py").write_text(LOCUSTFILE)
    port = server.server_address[1]
    me = psutil.Process(os.getpid())
    env = Environment(host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}", pid=me.pid,
                      pid_created=me.create_time(), log_path="", env={})
    try:
        yield server, env, tmp_path
    finally:
        server.shutdown()
        server.server_close()


def policy(**baseline) -> Policy:
    return Policy.model_validate({
        "service": "shop", "environment": {"start": "unused", "health": {"url": "http://{host}:{port}/"}},
        "load": {"locustfile": "locustfile.py", "users": 4, "spawn_rate": 4, "duration_s": 6, "min_requests": 20,
                 "budgets": {"p95_ms": 5000, "error_rate": 0.05},
                 "baseline": {"max_change": {"p95_ms": 0.2}, "min_samples": 3, **baseline}}})


def gate_run(folder: Path, run_id: str, version: str, **baseline):
    server, env, tmp = folder
    ctx = RunContext(run_id=run_id, service="shop", version=version, policy_path=str(tmp / "gate.yaml"),
                     evidence_dir=str(tmp / run_id), workspace=str(tmp / "svc"), started=datetime.now(UTC))
    store.transaction(lambda uow: uow.runs.upsert({"run_id": run_id, "service": "shop", "version": version,
                                                   "started": ctx.started}))
    result = locust_load.run(policy(**baseline), ctx, env)
    assert result.status is not Status.error, result.error
    return result


def finish(run_id: str, decision: str) -> None:
    store.transaction(lambda uow: uow.runs.finish(run_id, "finished", decision, datetime.now(UTC)))


def test_a_p95_that_doubled_since_the_last_go_blocks_under_the_budget(service, cli_db):
    first = gate_run(service, "rg-base", "1.0.0")
    assert "no baseline yet" in first.summary and first.status is Status.passed
    finish("rg-base", "GO")
    service[0].delay_s = 0.15  # the new release answers 30x slower, still far under the 5 s budget

    slow = gate_run(service, "rg-slow", "1.1.0")

    [finding] = [f for f in slow.findings if f.rule == "baseline.p95_ms"]
    assert finding.blocking and slow.status is Status.failed
    assert finding.data["value"] < 5000 and finding.data["value"] > finding.data["baseline"]
    assert finding.data["change"] > 0.2 and finding.data["p_value"] < 0.05
    assert f"p95 {finding.data['value']:.0f} ms is +" in finding.title
    assert f"over the baseline {finding.data['baseline']:.0f} ms (1.0.0's GO, run rg-base)" in finding.title
    assert "more than the allowed +20%" in finding.title
    assert slow.metric("p95_ms").passed is True, "the absolute budget holds"
    verdict = decide([slow], [ExpectedStage("locust")], datetime.now(UTC))
    assert verdict.decision is Decision.NO_GO
    assert any("over the baseline" in r.message for r in verdict.reasons)


def test_a_pinned_baseline_the_gate_never_passed_stops_before_the_load(service, cli_db):
    server, env, tmp = service
    ctx = RunContext(run_id="rg-pinned", service="shop", version="2.0.0", policy_path=str(tmp / "gate.yaml"),
                     evidence_dir=str(tmp / "rg-pinned"), workspace=str(tmp / "svc"), started=datetime.now(UTC))
    result = locust_load.run(policy(version="1.9.0"), ctx, env)
    assert result.status is Status.error
    assert "no GO of shop 1.9.0 with load samples" in result.error
    assert not (tmp / "rg-pinned" / "locust").exists(), "no load was spent"


def test_purging_an_old_run_removes_its_samples_and_a_kept_go_keeps_its_own(engine):
    from persistence import UnitOfWork
    from persistence.retention import purge

    old = datetime(2026, 1, 1, tzinfo=UTC)
    with UnitOfWork(engine) as uow:
        for run_id, decision in (("rg-old-go", "GO"), ("rg-old-no-go", "NO_GO")):
            uow.runs.upsert({"run_id": run_id, "service": "shop", "version": run_id, "started_at": old})
            uow.load_samples.replace(run_id, {"p95_ms": (120.0, [110.0, 120.0, 125.0])})
            uow.runs.finish(run_id, "finished", decision, old)
        uow.commit()
    with UnitOfWork(engine) as uow:
        purge(uow, datetime(2026, 6, 1, tzinfo=UTC), at=datetime(2026, 6, 1, tzinfo=UTC))
        uow.commit()
    with UnitOfWork(engine) as uow:
        kept = {run_id: uow.load_samples.for_run(run_id) for run_id in ("rg-old-go", "rg-old-no-go")}
        baseline = uow.load_samples.baseline("shop", "rg-new")
    assert kept == {"rg-old-go": {"p95_ms": (120.0, [110.0, 120.0, 125.0])}, "rg-old-no-go": {}}
    assert baseline is not None and baseline["run_id"] == "rg-old-go"
