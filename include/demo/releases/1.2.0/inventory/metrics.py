"""Prometheus metrics in the text exposition format, without a client library."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    def esc(v: str) -> str:
        return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """http_requests_total{method,endpoint,status} and http_request_duration_seconds{method,endpoint}."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, str], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = {}
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._counts: dict[tuple[str, str], int] = defaultdict(int)

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, endpoint, str(status))] += 1
            key = (method, endpoint)
            buckets = self._buckets.setdefault(key, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self._sums[key] += seconds
            self._counts[key] += 1

    def render(self) -> str:
        with self._lock:
            lines = ["# HELP http_requests_total Requests served, by method, endpoint and status.",
                     "# TYPE http_requests_total counter"]
            for (method, endpoint, status), n in sorted(self._requests.items()):
                lines.append(f"http_requests_total{_labels(method=method, endpoint=endpoint, status=status)} {n}")
            lines += ["# HELP http_request_duration_seconds Request latency in seconds.",
                      "# TYPE http_request_duration_seconds histogram"]
            for (method, endpoint), buckets in sorted(self._buckets.items()):
                for bound, n in zip(BUCKETS, buckets):
                    labels = _labels(method=method, endpoint=endpoint, le=repr(bound))
                    lines.append(f"http_request_duration_seconds_bucket{labels} {n}")
                count = self._counts[(method, endpoint)]
                lines.append(f"http_request_duration_seconds_bucket"
                             f"{_labels(method=method, endpoint=endpoint, le='+Inf')} {count}")
                base = _labels(method=method, endpoint=endpoint)
                lines.append(f"http_request_duration_seconds_sum{base} {self._sums[(method, endpoint)]:.6f}")
                lines.append(f"http_request_duration_seconds_count{base} {count}")
        return "\n".join(lines) + "\n"
