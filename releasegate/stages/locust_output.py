"""Locust's output, read once: pure functions over the files a headless run writes.

- `<prefix>_stats.csv`: final stats per request name; the row 'Aggregated' is the whole run
  (`parse_stats_csv`).
- `<prefix>_stats_history.csv` (written with --csv-full-history): one row per request name and second, plus
  the 'Aggregated' row (`parse_stats_history`). Request and failure counts in a row are totals since the
  start; its percentiles are Locust's *current* ones, over the last few seconds. The gate sets that window to
  the length of a stress step or soak window (see locust_shapes/), so the row that ends a step or window
  carries the percentiles of exactly that step or window (releasegate.stages.load_profiles).
- `<prefix>.json` (--json-file): requests and failures, those that finished during the stop timeout included
  (`locust_json_totals`).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from releasegate.domain.errors import StageError

AGGREGATED = "Aggregated"
PERCENTILES = {"p50_ms": "50%", "p95_ms": "95%", "p99_ms": "99%"}


@dataclass(frozen=True)
class EndpointStats:
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass(frozen=True)
class HistoryRow:
    """One row of the stats history: the state of one request name at one second."""

    timestamp: int
    users: int
    name: str
    rps: float
    failures_per_s: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    requests: int
    failures: int


@dataclass(frozen=True)
class Measurement:
    """One Locust run: final stats per request name and the per-second history."""

    stats: dict[str, EndpointStats]
    history: list[HistoryRow]
    scrapes: tuple[str | None, str | None, str] = (None, None, "")  # /metrics before, after, or why not
    completed: tuple[int, int] | None = None  # (requests, failures) from Locust's JSON, stop timeout included


def parse_stats_csv(text: str, source: str = "stats.csv") -> dict[str, EndpointStats]:
    """Locust's <prefix>_stats.csv into stats per request name; the row 'Aggregated' is the whole run."""
    try:
        rows = list(csv.DictReader(text.splitlines()))
        stats = {row["Name"]: _row(row) for row in rows}
    except (KeyError, ValueError, TypeError, csv.Error) as exc:
        raise StageError(f"{source}: Locust stats cannot be read ({type(exc).__name__}: {exc})") from None
    if AGGREGATED not in stats:
        raise StageError(f"{source}: no 'Aggregated' row — Locust did not finish writing its stats")
    return stats


def _row(row: dict[str, str]) -> EndpointStats:
    def ms(key: str) -> float:
        value = row.get(key, "N/A")
        return 0.0 if value in ("N/A", "") else float(value)

    return EndpointStats(name=row["Name"], requests=int(row["Request Count"]), failures=int(row["Failure Count"]),
                         rps=float(row["Requests/s"]), p50_ms=ms("50%"), p95_ms=ms("95%"), p99_ms=ms("99%"))


def locust_json_totals(path: Path) -> tuple[int, int] | None:
    """Requests and failures from Locust's --json-file: unlike its CSV, it counts the requests that finished
    during the stop timeout, which the service's own counters also saw."""
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
        return sum(int(r["num_requests"]) for r in rows), sum(int(r["num_failures"]) for r in rows)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def parse_stats_history(text: str, source: str = "stats_history.csv") -> list[HistoryRow]:
    """Locust's <prefix>_stats_history.csv into rows; StageError when it cannot be read or is empty."""
    try:
        rows = [_history_row(row) for row in csv.DictReader(text.splitlines())]
    except (KeyError, ValueError, TypeError, csv.Error) as exc:
        raise StageError(f"{source}: Locust stats history cannot be read ({type(exc).__name__}: {exc})") from None
    if not any(r.name == AGGREGATED for r in rows):
        raise StageError(f"{source}: no 'Aggregated' rows — was Locust run with --csv-full-history?")
    return rows


def _history_row(row: dict[str, str]) -> HistoryRow:
    return HistoryRow(timestamp=int(row["Timestamp"]), users=int(row["User Count"]), name=row["Name"],
                      rps=float(row["Requests/s"]), failures_per_s=float(row["Failures/s"]),
                      p50_ms=_ms(row["50%"]), p95_ms=_ms(row["95%"]), p99_ms=_ms(row["99%"]),
                      requests=int(row["Total Request Count"]), failures=int(row["Total Failure Count"]))


def _ms(value: str) -> float | None:
    return None if value in ("N/A", "") else float(value)


def of_name(rows: list[HistoryRow], name: str = AGGREGATED) -> list[HistoryRow]:
    return [r for r in rows if r.name == name]


def names(rows: list[HistoryRow]) -> list[str]:
    return sorted({r.name for r in rows if r.name != AGGREGATED})


def time_series(rows: list[HistoryRow]) -> dict[str, list]:
    """The aggregated rows as columns, time in seconds from the first row (compact JSON for the report)."""
    agg = of_name(rows)
    t0 = agg[0].timestamp if agg else 0
    return {"t_s": [r.timestamp - t0 for r in agg], "users": [r.users for r in agg],
            "rps": [r.rps for r in agg], "failures_per_s": [r.failures_per_s for r in agg],
            "p50_ms": [r.p50_ms for r in agg], "p95_ms": [r.p95_ms for r in agg],
            "p99_ms": [r.p99_ms for r in agg], "requests": [r.requests for r in agg]}
