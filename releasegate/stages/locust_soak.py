"""The soak profile's result: a long steady run cut into windows, the p95 drift from the first window to the
last, and the growth of the service's memory (RSS of its process and children, sampled every second by
`RssSampler` while Locust runs). A breach blocks. Evidence: soak.json.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Metric
from releasegate.policy import Load
from releasegate.stages import load_profiles as lp
from releasegate.stages.locust_budgets import Outcome, holds
from releasegate.stages.locust_output import Measurement
from releasegate.stages.locust_run import write_json


def soak(load: Load, measured: Measurement, samples: list[tuple[float, float]], folder: Path) -> Outcome:
    spec = load.soak_spec()
    windows = lp.soak_windows(measured.history, spec.window_s)
    drift = lp.drift_ratio(windows)
    if drift is None:
        raise StageError(f"the soak gave fewer than two {spec.window_s:g} s windows with traffic — "
                         f"see {folder / 'run1.log'}")
    memory = lp.memory_summary(samples)
    if spec.max_memory_growth_mb is not None and memory is None:
        raise StageError("the service's memory could not be sampled (pid gone?) — see the provision log")
    write_json(folder / "soak.json", {"window_s": spec.window_s, "windows": [w.as_dict() for w in windows],
                                      "p95_drift_ratio": round(drift, 4), "memory": memory,
                                      "rss_samples": [list(s) for s in samples]})
    checks = soak_checks(spec, windows, drift, memory)
    metrics = [Metric(name="soak.windows", value=len(windows)),
               Metric(name="soak.p95_first_window_ms", value=windows[0].p95_ms or 0, unit="ms"),
               Metric(name="soak.p95_last_window_ms", value=windows[-1].p95_ms or 0, unit="ms")]
    metrics += [_metric(f"soak.{name}", value, limit, "<=", unit) for name, value, limit, unit in checks]
    metrics += [Metric(name=f"soak.rss_{k}_mb", value=memory[f"{k}_mb"], unit="MB") for k in ("first", "last", "max")
                ] if memory else []
    findings = [soak_finding(load, name, value, limit, unit) for name, value, limit, unit in checks
                if limit is not None and value > limit]
    words = f"soak: p95 drift ×{drift:.2f} over {len(windows)} windows"
    words += f", RSS +{memory['growth_mb']:.1f} MB" if memory else ""
    return Outcome(metrics=metrics, findings=findings, summary=words)


def soak_checks(spec, windows: list[lp.Window], drift: float,
                memory: dict | None) -> list[tuple[str, float, float | None, str]]:
    checks = [("p95_drift_ratio", round(drift, 4), spec.max_p95_drift_ratio, "ratio")]
    if memory is not None:
        checks.append(("rss_growth_mb", memory["growth_mb"], spec.max_memory_growth_mb, "MB"))
    return checks


def soak_finding(load: Load, name: str, value: float, limit: float, unit: str) -> Finding:
    what = {"p95_drift_ratio": f"p95 drifted ×{value:.2f} from the first window to the last",
            "rss_growth_mb": f"the service's memory grew by {value:.1f} MB during the soak"}[name]
    return Finding(kind="budget", rule=name, severity=load.severity, location="overall",
                   title=f"{what} (limit {limit:g} {unit})", fingerprint=fingerprint("budget", "soak", name),
                   data={"value": value, "threshold": limit, "operator": "<="})


def _metric(name: str, value: float, limit: float | None, operator: str, unit: str) -> Metric:
    if limit is None:
        return Metric(name=name, value=value, unit=unit)
    return Metric(name=name, value=value, unit=unit, threshold=limit, operator=operator,
                  passed=holds(value, limit, operator))


class RssSampler:
    """Samples the resident memory (MB) of the service process and its children every second, in a thread.

    The process is checked against its creation time, so a recycled pid is never sampled.
    """

    def __init__(self, pid: int, created: float, interval_s: float = 1.0) -> None:
        self.pid, self.created, self.interval_s = pid, created, interval_s
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="releasegate-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while True:
            mb = service_rss_mb(self.pid, self.created)
            if mb is not None:
                self.samples.append((round(time.monotonic() - self._started, 2), mb))
            if self._stop.wait(self.interval_s):
                return


def service_rss_mb(pid: int, created: float) -> float | None:
    """RSS of the process and its children in MB; None when it is gone or is not the one the gate started."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - created) > 1:
            return None
        procs = [proc, *proc.children(recursive=True)]
        return round(sum(p.memory_info().rss for p in procs) / 2**20, 2)
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None
