"""Restock notifications, a background job: the service queues one when it shows an item low on stock, and a
worker (`python -m inventory.jobs`) records it in `restock_notifications`.

The queue is the Redis list `<BROKER_PREFIX>restock` on $BROKER_URL; a job the worker cannot record goes, with its
error, to `<BROKER_PREFIX>restock.dead`. The counters `<BROKER_PREFIX>restock.created` (by the service, with the job)
and `<BROKER_PREFIX>restock.completed` (by the worker) say how many jobs were made and done. Without $BROKER_URL the
service queues nothing.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from typing import Any

from inventory.db import path_from_url

LOW_STOCK = 10  # fewer units than this: purchasing is told
QUEUE, DEAD, CREATED, COMPLETED = "restock", "restock.dead", "restock.created", "restock.completed"
_clients: dict[str, Any] = {}


def _redis(url: str) -> Any:
    import redis

    if url not in _clients:
        _clients[url] = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    return _clients[url]


def notify_if_low(sku: str, quantity: int) -> None:
    """Queue a restock notification for an item low on stock (nothing without a broker; a broker error is logged)."""
    url = os.environ.get("BROKER_URL")
    if not url or quantity >= LOW_STOCK:
        return
    import redis

    prefix = os.environ.get("BROKER_PREFIX", "")
    try:
        with _redis(url).pipeline() as both:  # MULTI: the job and its count together
            both.incr(prefix + CREATED).lpush(prefix + QUEUE, json.dumps({"sku": sku, "quantity": quantity}))
            both.execute()
    except redis.RedisError as exc:
        print(f"restock notification for {sku} not queued: {exc}", file=sys.stderr, flush=True)


def record(conn: sqlite3.Connection, job: dict) -> None:
    with conn:
        conn.execute("INSERT INTO restock_notifications (sku, quantity) VALUES (?, ?)", (job["sku"], job["quantity"]))


def work(url: str, prefix: str, database_path: str) -> None:
    """Take jobs off the queue until stopped; a job that fails is dead-lettered with its error."""
    client = _redis(url)
    conn = sqlite3.connect(database_path, timeout=5)
    print(f"restock worker: waiting on {prefix}{QUEUE}", flush=True)
    while True:
        taken = client.brpop([prefix + QUEUE], timeout=1)
        if taken is None:
            continue
        raw = taken[1].decode("utf-8")
        try:
            record(conn, json.loads(raw))
            client.incr(prefix + COMPLETED)
        except Exception as exc:  # noqa: BLE001 - any failure dead-letters the job with its reason
            client.lpush(prefix + DEAD, json.dumps({"job": raw, "error": f"{type(exc).__name__}: {exc}"}))
            print(f"restock job failed, dead-lettered: {type(exc).__name__}: {exc}", flush=True)


def main() -> int:
    url, database = os.environ.get("BROKER_URL"), os.environ.get("DATABASE_URL")
    if not url or not database:
        print("usage: BROKER_URL=redis://... DATABASE_URL=sqlite:///... python -m inventory.jobs", file=sys.stderr)
        return 2
    work(url, os.environ.get("BROKER_PREFIX", ""), path_from_url(database))
    return 0


if __name__ == "__main__":
    sys.exit(main())
