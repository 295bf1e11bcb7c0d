"""The run's own part of the broker: a RabbitMQ virtual host or a Redis key prefix, made before the workers start,
counted by the `messaging` stage, and removed at teardown.

RabbitMQ is asked through `rabbitmqctl` (add_vhost, set_permissions, list_queues, delete_vhost; `-n` the policy's
node, else rabbitmqctl's default); a virtual host that is gone is an error, never an empty queue. Redis through its
client: a queue is the list ``<prefix><name>`` (Celery's kombu transport with ``global_keyprefix``).
"""

from __future__ import annotations

import json
import logging
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from releasegate.domain.errors import StageError
from releasegate.environment.running import RunningBroker
from releasegate.policy.messaging import Broker
from releasegate.redact import redact
from releasegate.stages.base import find_tool, last_error_line, run_tool

log = logging.getLogger("releasegate")

PREFIX = "rg-"
CTL_TIMEOUT_S = 60
REDIS_TIMEOUT_S = 5


def open_broker(spec: Broker) -> RunningBroker:
    """The run's virtual host (RabbitMQ) or key prefix (Redis); StageError when the broker cannot be reached."""
    name = f"{PREFIX}{secrets.token_hex(6)}"
    if spec.kind == "redis":
        _redis(spec.url).ping()  # unreachable: raises, through _redis's error
        return RunningBroker(kind="redis", server_url=spec.url, url=spec.url, prefix=f"{name}:")
    _ctl(spec.node, "add_vhost", name)
    running = RunningBroker(kind="rabbitmq", server_url=spec.url, url=_with_vhost(spec.url, name), vhost=name,
                            node=spec.node or "")
    try:
        user = urlsplit(spec.url).username or "guest"
        _ctl(spec.node, "set_permissions", "-p", name, user, ".*", ".*", ".*")
    except BaseException:
        close_broker(running)
        raise
    return running


def close_broker(broker: RunningBroker) -> str:
    """Remove what the run made: the virtual host with its queues, or every key under the prefix."""
    if broker.kind == "redis":
        client = _redis(broker.url)
        keys = list(client.scan_iter(match=f"{broker.prefix}*", count=500))
        if keys:
            client.delete(*keys)
        return f"redis keys {broker.prefix}*: {len(keys)} removed"
    _ctl(broker.node or None, "delete_vhost", broker.vhost)
    return f"rabbitmq virtual host {broker.vhost}: removed"


def close_broker_quietly(broker: RunningBroker) -> str:
    """close_broker for a start that failed: a broker that cannot be cleaned is logged, the start's own error kept."""
    try:
        return close_broker(broker)
    except Exception as exc:  # noqa: BLE001 - the caller is already raising the error that matters
        log.error("provision: could not remove the run's part of the broker: %s — remove it by hand", exc)
        return f"broker: NOT cleaned ({exc})"


def queue_depths(broker: RunningBroker, names: list[str]) -> dict[str, int]:
    """Messages in each queue (RabbitMQ: ready and unacknowledged; Redis: the list's length); a queue the broker does
    not know holds 0. StageError when the broker cannot be asked or the run's virtual host is gone."""
    if broker.kind == "redis":
        client = _redis(broker.url)
        return {name: int(client.llen(f"{broker.prefix}{name}")) for name in names}
    node = broker.node or None
    vhosts = {v["name"] for v in _ctl_json(node, "list_vhosts", "name")}
    if broker.vhost not in vhosts:
        raise StageError(f"rabbitmq: the run's virtual host {broker.vhost} does not exist any more — something "
                         "deleted it during the run; its queues cannot be counted")
    found = {q["name"]: int(q["messages"]) for q in _ctl_json(node, "list_queues", "-p", broker.vhost, "name",
                                                             "messages")}
    return {name: found.get(name, 0) for name in names}


def counters(broker: RunningBroker, keys: list[str]) -> dict[str, int]:
    """Redis counters under the run's prefix (a key never set counts 0)."""
    if broker.kind != "redis":
        raise StageError("job counters are read from Redis; this run's broker is RabbitMQ")
    values = _redis(broker.url).mget([f"{broker.prefix}{key}" for key in keys]) if keys else []
    try:
        return {key: int(value or 0) for key, value in zip(keys, values)}
    except ValueError:
        raise StageError(f"a job counter is not a number: {dict(zip(keys, values))}") from None


def _with_vhost(url: str, vhost: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{vhost}", parts.query, parts.fragment))


def _redis(url: str) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)
    return _Guarded(client, url)


class _Guarded:
    """A Redis client whose connection errors become StageError naming the server (without its password)."""

    def __init__(self, client: Any, url: str) -> None:
        self._client, self._url = client, url

    def __getattr__(self, name: str) -> Any:
        import redis

        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                result = method(*args, **kwargs)
                return list(result) if name == "scan_iter" else result
            except redis.RedisError as exc:
                raise StageError(f"redis at {redact(self._url)}: {type(exc).__name__}: {redact(str(exc))} — is the "
                                 "broker running (environment.broker.url)?") from None

        return call


def _ctl(node: str | None, *args: str) -> str:
    command = [find_tool("rabbitmqctl"), *(["-n", node] if node else []), *args]
    run = run_tool(command, cwd=Path.cwd(), timeout_s=CTL_TIMEOUT_S)
    if run.returncode != 0:
        said = next((ln.strip() for ln in run.stderr.splitlines() if ln.startswith("Error")), None)
        said = redact(said or last_error_line(run.stderr, run.stdout))[:300]
        raise StageError(f"rabbitmqctl {args[0]}: {run.ending()}: {said} "
                         "— is RabbitMQ running on this host (environment.broker.node names another node)?")
    return run.stdout


def _ctl_json(node: str | None, *args: str) -> list[dict]:
    text = _ctl(node, *args, "--formatter", "json", "--silent")
    try:
        rows = json.loads(text or "[]")
    except ValueError:
        raise StageError(f"rabbitmqctl {args[0]}: output is not JSON: {redact(text.strip()[:200])}") from None
    if not isinstance(rows, list):
        raise StageError(f"rabbitmqctl {args[0]}: expected a JSON list, got {type(rows).__name__}")
    return rows
