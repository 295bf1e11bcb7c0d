"""Waiting for a process the gate started to be healthy: an HTTP health check, or a TCP port that accepts."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

import requests

from releasegate.domain.errors import ProvisionError
from releasegate.environment.logs import read_log, tail
from releasegate.policy import Dependency, fill


def wait_dependency(dep: Dependency, values: dict, proc: subprocess.Popen, log_path: Path) -> float:
    health = dep.health
    if health.url:
        return wait_healthy(fill(health.url, values), health, proc, log_path)
    return wait_tcp(fill(health.tcp or "", values), health, proc, log_path)


def wait_tcp(address: str, health, proc: subprocess.Popen, log_path: Path) -> float:
    host, _, port = address.rpartition(":")
    started = time.monotonic()
    while time.monotonic() - started < health.timeout_s:
        if proc.poll() is not None:
            raise ProvisionError(f"{log_path.stem} exited with code {proc.returncode} before it accepted "
                                 f"connections: {tail(read_log(log_path))} — see {log_path}")
        try:
            with socket.create_connection((host, int(port)), timeout=1):
                return time.monotonic() - started
        except OSError:
            time.sleep(health.interval_s)
    raise ProvisionError(f"nothing accepted connections at {address} within {health.timeout_s:g} s — see {log_path}")


def wait_healthy(url: str, health, proc: subprocess.Popen, log_path: Path) -> float:
    started = time.monotonic()
    last = "no answer yet"
    while time.monotonic() - started < health.timeout_s:
        if proc.poll() is not None:
            raise ProvisionError(f"the service exited with code {proc.returncode} before it was healthy: "
                                 f"{tail(read_log(log_path))} — see {log_path}")
        try:
            answer = requests.get(url, timeout=2)
            if answer.status_code == health.expect_status:
                return time.monotonic() - started
            last = f"HTTP {answer.status_code}"
        except requests.RequestException as exc:
            last = type(exc).__name__
        time.sleep(health.interval_s)
    raise ProvisionError(f"the service was not healthy at {url} within {health.timeout_s:g} s (last: {last}) — "
                         f"see {log_path}; raise environment.health.timeout_s if it is just slow")
