"""Real faults for tests: a PostgreSQL database that refuses every connection for a while, a small gate policy
whose run takes seconds, and the processes a test left behind."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import psutil
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_ADMIN_URL_DEFAULT, PG_ADMIN_URL_ENV


class DatabaseOutage:
    """Take a PostgreSQL database away from its clients and give it back: ``ALLOW_CONNECTIONS false`` and every
    session of it terminated (as a failover or a restart does), until ``restore()``."""

    def __init__(self, url: str) -> None:
        import os

        self.name = make_url(url).database
        self._admin = create_engine(os.environ.get(PG_ADMIN_URL_ENV, PG_ADMIN_URL_DEFAULT),
                                    isolation_level="AUTOCOMMIT")
        self.down = False

    def start(self) -> None:
        with self._admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS false'))
            connection.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": self.name})
        self.down = True

    def restore(self) -> None:
        if self.down:
            with self._admin.connect() as connection:
                connection.execute(text(f'ALTER DATABASE "{self.name}" WITH ALLOW_CONNECTIONS true'))
            self.down = False

    def close(self) -> None:
        try:
            self.restore()
        finally:
            self._admin.dispose()


@contextlib.contextmanager
def database_outage(url: str) -> Iterator[DatabaseOutage]:
    outage = DatabaseOutage(url)
    try:
        yield outage
    finally:
        outage.close()


def tiny_policy(folder: Path, *, environment: bool = True, env: dict[str, str] | None = None,
                extra: dict | None = None) -> Path:
    """A service whose run takes seconds: one passing pytest suite, and (environment) a Python HTTP server."""
    source = folder / "tiny" / "1.0.0"
    (source / "tests").mkdir(parents=True, exist_ok=True)
    (source / "tests" / "test_ok.py").write_text("def test_ok():\n    assert 1 + 1 == 2\n")
    policy: dict = {"service": "tiny", "source": {"path": "tiny/{version}"},
                    "suites": [{"name": "unit", "paths": ["tests"]}]}
    if environment:
        policy["environment"] = {"start": "{python} -m http.server {port} --bind {host}",
                                 "health": {"url": "http://{host}:{port}/", "timeout_s": 20, "interval_s": 0.1},
                                 "env": dict(env or {})}
    policy.update(extra or {})
    path = folder / "gate.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def left_running(pids: list[int]) -> list[int]:
    """The pids that are still alive (zombies count as gone)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            pass
    return alive


def descendants() -> list[psutil.Process]:
    """This process's live descendants."""
    return [p for p in psutil.Process().children(recursive=True) if left_running([p.pid])]
