"""Python providers for Chaos Toolkit experiments run by the gate's chaos stage.

An experiment calls them as
    {"type": "python", "module": "releasegate.chaos_actions", "func": "pause_process", "arguments": {...}}
with the values the gate passes as `--var` (base_url, dep_NAME_pid, dep_NAME_pid_created, dep_NAME_proxy_control).

Faults act only on processes the gate started: a pid is used only while its creation time still matches.
`measure` and `wait_recovered` return a dict with "releasegate" set to "measurement" or "recovery": the
stage's journal parser reads them into the stage's metrics.
"""

from __future__ import annotations

import os
import signal
import statistics
import time

import psutil
import requests
from chaoslib.exceptions import ActivityFailed  # type: ignore[import-untyped]  # chaostoolkit ships no type hints


def _own_process(pid: int | str, created: float | str) -> psutil.Process:
    try:
        proc = psutil.Process(int(pid))
    except psutil.NoSuchProcess as exc:
        raise ActivityFailed(f"pid {pid} is not running") from exc
    if abs(proc.create_time() - float(created)) > 1:
        raise ActivityFailed(f"pid {pid} is not the process the gate started: left alone")
    return proc


def pause_process(pid: int | str, created: float | str) -> dict:
    """Stop the dependency (SIGSTOP): it keeps its port but answers nothing, like a hung server."""
    _own_process(pid, created)
    os.kill(int(pid), signal.SIGSTOP)
    return {"fault": "paused", "pid": int(pid)}


def resume_process(pid: int | str, created: float | str) -> dict:
    """Let a paused dependency run again (SIGCONT)."""
    _own_process(pid, created)
    os.kill(int(pid), signal.SIGCONT)
    return {"fault": "cleared", "pid": int(pid)}


def set_proxy_faults(control_url: str, latency_ms: float = 0, refuse_new: bool = False,
                     reset_active: bool = False) -> dict:
    """Inject latency and/or connection resets through the gate's fault proxy."""
    body = {"latency_ms": float(latency_ms), "refuse_new": bool(refuse_new), "reset_active": bool(reset_active)}
    return _post(f"{control_url.rstrip('/')}/faults", body)


def clear_proxy_faults(control_url: str) -> dict:
    return _post(f"{control_url.rstrip('/')}/clear", {})


def _post(url: str, body: dict) -> dict:
    try:
        answer = requests.post(url, json=body, timeout=5)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise ActivityFailed(f"fault proxy control at {url} did not accept the request: {exc}") from exc
    return answer.json()


def _timed_get(url: str, timeout_s: float) -> tuple[bool, float]:
    started = time.perf_counter()
    try:
        ok = requests.get(url, timeout=timeout_s).status_code == 200
    except requests.RequestException:
        ok = False
    return ok, (time.perf_counter() - started) * 1000


def measure(url: str, duration_s: float = 3, interval_s: float = 0.2, timeout_s: float = 1.0,
            label: str = "during fault") -> dict:
    """What the service did for a bounded while: requests, errors (non-200 or no answer), latency."""
    started, samples = time.time(), []
    deadline = time.monotonic() + float(duration_s)
    while time.monotonic() < deadline:
        samples.append(_timed_get(url, float(timeout_s)))
        time.sleep(float(interval_s))
    return summarize(samples, label, started, time.time())


def summarize(samples: list[tuple[bool, float]], label: str, started: float, ended: float) -> dict:
    latencies = sorted(ms for _ok, ms in samples)
    errors = sum(1 for ok, _ms in samples if not ok)
    return {"releasegate": "measurement", "label": label, "requests": len(samples), "errors": errors,
            "error_rate": errors / len(samples) if samples else 1.0,
            "p50_ms": statistics.median(latencies) if latencies else 0.0,
            "max_ms": latencies[-1] if latencies else 0.0, "started": started, "ended": ended}


def wait_recovered(url: str, timeout_s: float = 10, interval_s: float = 0.1, request_timeout_s: float = 1.0) -> dict:
    """Seconds until the service answers 200 again after the fault was cleared; fails past timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < float(timeout_s):
        ok, _ms = _timed_get(url, float(request_timeout_s))
        if ok:
            return {"releasegate": "recovery", "recovery_s": round(time.monotonic() - started, 3)}
        time.sleep(float(interval_s))
    raise ActivityFailed(f"{url} did not answer 200 within {float(timeout_s):g} s after the fault was cleared")
