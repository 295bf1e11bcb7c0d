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


class CliRun:
    """`releasegate run` in the background, its stderr watched line by line (to time a fault between steps)."""

    def __init__(self, policy: Path, version: str, *args: str, env: dict[str, str] | None = None) -> None:
        import os
        import subprocess
        import sys
        import threading

        command = [str(Path(sys.executable).parent / "releasegate"), "run", "--policy", str(policy),
                   "--version", version, *args]
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.pid = self.proc.pid
        self.stderr: list[str] = []
        self.stdout: list[str] = []
        self._changed = threading.Condition()
        self._readers = [threading.Thread(target=self._read, args=(stream, lines), daemon=True)
                         for stream, lines in ((self.proc.stderr, self.stderr), (self.proc.stdout, self.stdout))]
        for reader in self._readers:
            reader.start()

    def _read(self, stream, lines: list[str]) -> None:
        for line in stream:
            with self._changed:
                lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float) -> str:
        """The first stderr line containing `text`; AssertionError if the run ends or the time is up first."""
        import time

        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = next((line for line in self.stderr if text in line), None)
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                assert left > 0 and self.proc.poll() is None, (
                    f"no {text!r} on stderr (exit {self.proc.poll()}): {''.join(self.stderr)[-3000:]}")
                self._changed.wait(min(left, 1.0))

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Exit code, stdout and stderr; the run is killed (and the test fails) if it takes longer than `timeout`."""
        import subprocess

        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the run took longer than {timeout} s: {''.join(self.stderr)[-3000:]}") from None
        for reader in self._readers:
            reader.join(timeout=10)
        return code, "".join(self.stdout), "".join(self.stderr)

    def __enter__(self) -> CliRun:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def processes_of(home: Path, grace_s: float = 5.0) -> list[psutil.Process]:
    """Live processes started for a gate home (they inherit RELEASEGATE_HOME), after a short grace period."""
    import os
    import time

    deadline = time.monotonic() + grace_s
    while True:
        found = []
        for proc in psutil.process_iter():
            try:
                if (proc.pid != os.getpid() and proc.status() != psutil.STATUS_ZOMBIE
                        and proc.environ().get("RELEASEGATE_HOME") == str(home)):
                    found.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.2)
