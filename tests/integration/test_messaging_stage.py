"""Brokers and workers in the environment, and the `messaging` stage, against the real Redis and RabbitMQ on
127.0.0.1: the run gets its own key prefix or virtual host, a kombu worker beside a small service consumes it, the
stage counts queues and dead letters; a broker that is down is INCONCLUSIVE; teardown leaves nothing behind."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import psutil
import pytest
import redis
import yaml
from kombu import Connection

from releasegate.context import open_run
from releasegate.domain.models import Status
from releasegate.environment import Environment, provision, teardown
from releasegate.environment.brokers import queue_depths
from releasegate.environment.running import RunningBroker
from releasegate.policy import load_policy
from releasegate.stages import registry

REDIS_URL = os.environ.get("RELEASEGATE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
AMQP_URL = os.environ.get("RELEASEGATE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

WORKER = """\
import os
from kombu import Connection

url, prefix = os.environ["BROKER_URL"], os.environ.get("BROKER_PREFIX", "")
options = {"global_keyprefix": prefix} if url.startswith("redis") else {}
with Connection(url, transport_options=options) as connection:
    jobs, dead = connection.SimpleQueue("jobs"), connection.SimpleQueue("jobs.dead")
    print("worker ready", flush=True)
    while True:
        try:
            message = jobs.get(block=True, timeout=0.5)
        except jobs.Empty:
            continue
        if message.payload == "bad":
            dead.put({"job": message.payload, "error": "restock of an unknown item"})
        elif url.startswith("redis"):
            import redis
            redis.Redis.from_url(url).incr(prefix + "jobs.completed")
        message.ack()
"""


def _reachable(url: str, port: int) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"broker not reachable at {url} (CI=true)")
        pytest.skip(f"broker not reachable at {url}")


@pytest.fixture(params=["redis", "rabbitmq"])
def broker(request: pytest.FixtureRequest) -> dict:
    if request.param == "redis":
        _reachable(REDIS_URL, 6379)
        return {"kind": "redis", "url": REDIS_URL}
    _reachable(AMQP_URL, 5672)
    if shutil.which("rabbitmqctl") is None:
        pytest.skip("rabbitmqctl is needed to make the run's virtual host")
    return {"kind": "rabbitmq", "url": AMQP_URL}


def service(folder: Path, broker: dict, worker: str = WORKER, **messaging: object):
    """A small HTTP service with a kombu worker on the run's part of the broker, and an open run."""
    (folder / "worker.py").write_text(worker)
    gate = {"service": "shop", "source": {"path": "."},
            "environment": {"start": "{python} -m http.server {port} --bind {host}",
                            "health": {"url": "http://{host}:{port}/", "timeout_s": 20},
                            "broker": broker,
                            "workers": [{"name": "jobs", "start": "{python} worker.py",
                                         "env": {"BROKER_URL": "{broker_url}", "BROKER_PREFIX": "{broker_prefix}"}}]},
            "messaging": {"queues": ["jobs"], "dead_letter_queues": ["jobs.dead"], "drain_timeout_s": 10,
                          "interval_s": 0.2, **messaging}}
    (folder / "gate.yaml").write_text(yaml.safe_dump(gate))
    policy = load_policy(folder / "gate.yaml")
    return policy, open_run(policy, "1.0.0")


def publish(env: Environment, queue: str, payloads: list[str]) -> None:
    assert env.broker is not None
    options = {"global_keyprefix": env.broker.prefix} if env.broker.kind == "redis" else {}
    with Connection(env.broker.url, transport_options=options) as connection:
        simple = connection.SimpleQueue(queue)
        for payload in payloads:
            simple.put(payload)
        simple.close()


def run_messaging(policy, ctx, env: Environment):
    planned = registry.find(policy, "messaging")
    return planned.stage.run(policy, ctx, env, planned)


def left_behind(broker: RunningBroker) -> list[str]:
    if broker.kind == "redis":
        return [k.decode() for k in redis.Redis.from_url(broker.url).keys(f"{broker.prefix}*")]
    from releasegate.environment.brokers import _ctl_json

    return [v["name"] for v in _ctl_json(None, "list_vhosts", "name") if v["name"] == broker.vhost]


def test_jobs_the_worker_completes_drain_and_teardown_removes_the_runs_broker_part(tmp_path: Path, broker: dict):
    policy, ctx = service(tmp_path, broker)
    env = provision(policy, ctx)
    try:
        assert env.broker is not None and (env.broker.prefix or env.broker.vhost).startswith("rg-")
        publish(env, "jobs", ["ok"] * 5)
        result = run_messaging(policy, ctx, env)
    finally:
        teardown(env)

    assert (result.status, result.findings) == (Status.passed, []), result.error or result.summary
    assert "queues jobs " in result.summary and " -> 0 in " in result.summary and "jobs.dead 0" in result.summary
    assert not psutil.pid_exists(env.workers[0].pid) or psutil.Process(env.workers[0].pid).status() == "zombie"
    assert left_behind(env.broker) == []


def test_dead_letters_and_a_queue_nobody_consumes_are_findings_with_counts(tmp_path: Path, broker: dict):
    policy, ctx = service(tmp_path, broker, queues=["jobs", "idle"], drain_timeout_s=1.5)
    env = provision(policy, ctx)
    try:
        publish(env, "jobs", ["ok", "bad", "bad", "ok"])
        publish(env, "idle", ["x"] * 3)
        result = run_messaging(policy, ctx, env)
    finally:
        teardown(env)

    assert result.status == Status.failed, result.error or result.summary
    titles = {f.location: f.title for f in result.findings}
    assert set(titles) == {"idle", "jobs.dead"}
    assert "queue idle still holds 3 messages after" in titles["idle"] and "it held 3" in titles["idle"]
    assert "dead-letter queue jobs.dead holds 2 messages" in titles["jobs.dead"]
    assert left_behind(env.broker) == []


def test_a_broker_that_is_down_is_inconclusive(tmp_path: Path, broker: dict):
    policy, ctx = service(tmp_path, broker)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        free = sock.getsockname()[1]
    down = (RunningBroker(kind="redis", server_url=f"redis://127.0.0.1:{free}/0", url=f"redis://127.0.0.1:{free}/0",
                          prefix="rg-down:")
            if broker["kind"] == "redis" else
            RunningBroker(kind="rabbitmq", server_url=AMQP_URL, url=AMQP_URL, vhost="rg-down", node="rg_down@localhost"))
    env = Environment(host="127.0.0.1", port=free, base_url=f"http://127.0.0.1:{free}", pid=os.getpid(),
                      pid_created=psutil.Process().create_time(), log_path=str(tmp_path / "x.log"), env={},
                      broker=down)

    result = run_messaging(policy, ctx, env)

    assert result.status == Status.error
    expected = "ConnectionError" if broker["kind"] == "redis" else "unable to perform an operation on node"
    assert expected in (result.error or ""), result.error


def test_a_virtual_host_deleted_during_the_run_is_an_error_not_an_empty_queue():
    from releasegate.domain.errors import StageError

    _reachable(AMQP_URL, 5672)

    gone = RunningBroker(kind="rabbitmq", server_url=AMQP_URL, url=AMQP_URL, vhost="rg-never-made")
    with pytest.raises(StageError, match="virtual host rg-never-made does not exist"):
        queue_depths(gone, ["jobs"])


def test_a_worker_that_ends_at_start_fails_provisioning_and_leaves_no_broker_part_behind(tmp_path: Path,
                                                                                        broker: dict):
    from releasegate.domain.errors import ProvisionError

    policy, ctx = service(tmp_path, broker, "import sys\nprint('restock worker: no queue configured', flush=True)\n"
                                            "sys.exit(3)\n")
    before = _broker_parts(broker)
    with pytest.raises(ProvisionError, match=r"worker jobs \(pid \d+\) ended before the service was healthy.*"
                                             r"no queue configured"):
        teardown(provision(policy, ctx))  # teardown only when provisioning wrongly succeeds: nothing may leak

    assert _broker_parts(broker) - before == set()


def _broker_parts(broker: dict) -> set[str]:
    if broker["kind"] == "redis":
        return {k.decode() for k in redis.Redis.from_url(REDIS_URL).scan_iter(match="rg-*")}
    from releasegate.environment.brokers import _ctl_json

    return {v["name"] for v in _ctl_json(None, "list_vhosts", "name") if v["name"].startswith("rg-")}


def test_jobs_created_but_not_completed_are_a_finding_with_the_counts(tmp_path: Path):
    _reachable(REDIS_URL, 6379)
    jobs = [{"name": "restock", "created": "jobs.created", "completed": "jobs.completed"}]
    policy, ctx = service(tmp_path, {"kind": "redis", "url": REDIS_URL}, jobs=jobs)
    env = provision(policy, ctx)
    try:
        assert env.broker is not None
        publish(env, "jobs", ["ok", "bad", "ok", "bad", "ok"])
        redis.Redis.from_url(REDIS_URL).incrby(f"{env.broker.prefix}jobs.created", 5)  # as the service counts them
        result = run_messaging(policy, ctx, env)
    finally:
        teardown(env)

    assert result.status == Status.failed, result.error or result.summary
    titles = {f.location: f.title for f in result.findings}
    assert titles["restock"].startswith("messaging: jobs restock: 5 created, 3 completed — 2 did not complete")
    assert "dead-letter queue jobs.dead holds 2 messages" in titles["jobs.dead"]
    assert "jobs restock 3/5 completed" in result.summary
    assert left_behind(env.broker) == []


def test_a_broker_the_gate_starts_as_a_dependency_is_cleaned_before_it_stops(tmp_path: Path):
    """The demo's shape: the gate starts its own redis-server (a dependency) and names it in broker.url."""
    if shutil.which("redis-server") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("redis-server is not installed (scripts/install-system-deps.sh installs it)")
        pytest.skip("redis-server is not installed")
    service(tmp_path, {"kind": "redis", "url": REDIS_URL})
    raw = yaml.safe_load((tmp_path / "gate.yaml").read_text())
    raw["environment"]["broker"]["url"] = "redis://{dep_redis_host}:{dep_redis_port}/0"
    raw["environment"]["dependencies"] = [{"name": "redis", "health": {"tcp": "{host}:{port}", "timeout_s": 20},
                                           "start": "redis-server --port {port} --bind {host} --save '' "
                                                    "--appendonly no"}]
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(raw))
    policy = load_policy(tmp_path / "gate.yaml")
    ctx = open_run(policy, "1.0.0")
    env = provision(policy, ctx)
    try:
        assert env.broker is not None and env.broker.url == f"redis://127.0.0.1:{env.dependencies[0].port}/0"
        publish(env, "jobs", ["ok"] * 3)
        result = run_messaging(policy, ctx, env)
    finally:
        outcome = teardown(env)

    assert result.status is Status.passed, result.error or result.summary
    assert "redis keys rg-" in outcome and "NOT cleaned" not in outcome
    assert outcome.index("redis keys rg-") < outcome.index("redis: stopped")
    assert not psutil.pid_exists(env.dependencies[0].pid) or psutil.Process(env.dependencies[0].pid).status() == "zombie"
