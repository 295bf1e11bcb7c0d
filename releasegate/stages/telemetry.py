"""Observability cross-check: does the service's own /metrics agree with what Locust measured?

The load stage scrapes before and after the load (`scrape`), then calls `cross_check` with Locust's totals.
Everything but `scrape` is pure and tested on recorded scrapes of the demo (tests/fixtures/metrics).
A metric the policy requires that is not exposed, or a request or error counter whose increase disagrees
with Locust by more than the tolerance, is a finding: dashboards and alerts built on those counters would
not see what users see.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Finding, Metric
from releasegate.policy import Telemetry

FINDING_KIND = "telemetry"
SUFFIXES = ("_bucket", "_count", "_sum", "_total", "_created", "_info")


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0

    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.name, tuple(sorted(self.labels.items()))


def scrape(url: str, timeout_s: float = 5) -> str:
    """The endpoint's text; StageError when it does not answer 200 (the caller decides what that means)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - a URL from the policy
            return response.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as exc:
        raise StageError(f"telemetry: {url} answered {exc.code}, expected 200 — does the service expose metrics "
                         "there? fix load.telemetry.url") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise StageError(f"telemetry: {url} did not answer ({reason}) — is the service up and the URL right?") from None


_LINE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)(?:\s+-?\d+)?\s*$")
_LABEL = re.compile(r'\s*(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?P<value>(?:[^"\\]|\\.)*)"\s*(?:,|$)')
_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse_prometheus_text(text: str) -> list[Sample]:
    """Samples of the Prometheus text format (0.0.4; OpenMetrics' `# EOF` too); StageError on a broken line."""
    samples = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            samples.append(_sample(stripped, number))
    return samples


def _sample(line: str, number: int) -> Sample:
    match = _LINE.match(line)
    if not match:
        raise StageError(f"telemetry: line {number} is not in the Prometheus text format: {line[:120]!r}")
    try:
        value = _value(match["value"])
    except ValueError:
        raise StageError(f"telemetry: line {number} has no number: {line[:120]!r}") from None
    return Sample(match["name"], _labels(match["labels"] or "", line, number), value)


def _value(text: str) -> float:
    special = {"+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf, "NaN": math.nan}
    return special[text] if text in special else float(text)


def _labels(text: str, line: str, number: int) -> dict[str, str]:
    labels, position = {}, 0
    while position < len(text.rstrip()):
        match = _LABEL.match(text, position)
        if not match:
            raise StageError(f"telemetry: line {number} has malformed labels: {line[:120]!r}")
        labels[match["name"]] = _unescape(match["value"])
        position = match.end()
    return labels


def _unescape(value: str) -> str:
    return re.sub(r"\\[\\\"n]", lambda m: _ESCAPES[m.group(0)], value)


def cross_check(spec: Telemetry, before: str, after: str, requests: int,
                failures: int) -> tuple[list[Metric], list[Finding]]:
    """Required metrics present; the service's request and error counters grew as much as Locust counted."""
    old, new = parse_prometheus_text(before), parse_prometheus_text(after)
    findings = [_missing(spec, name) for name in missing_metrics(spec.required_metrics, new)]
    if not any(s.name == spec.requests_metric for s in new):
        if spec.requests_metric not in spec.required_metrics:
            findings.append(_missing(spec, spec.requests_metric))
        return [], findings
    counted = counter_increase(old, new, spec.requests_metric, spec.exclude)
    errors = counter_increase(old, new, spec.requests_metric, spec.exclude, spec.errors_selector)
    metrics = [*_comparison("requests", counted, requests, spec), *_comparison("errors", errors, failures, spec)]
    findings += [_disagrees(spec, what, ours, theirs) for what, ours, theirs in
                 (("requests", counted, requests), ("errors", errors, failures)) if not agrees(ours, theirs, spec.tolerance)]
    return metrics, findings


def missing_metrics(required: list[str], samples: list[Sample]) -> list[str]:
    """Required names with no sample: a name matches itself or its family (a histogram's _bucket …)."""
    names = {s.name for s in samples}
    return [r for r in required if r not in names and not any(r + suffix in names for suffix in SUFFIXES)]


def counter_increase(before: list[Sample], after: list[Sample], metric: str, exclude: dict[str, list[str]],
                     selector: dict[str, str] | None = None) -> float:
    """How much a counter grew between two scrapes, over the series that match `selector` and are not excluded.

    A series that is new counts from 0; one that went down was reset (the service restarted): it counts
    from 0 too, as Prometheus' increase() does.
    """
    old = {s.key(): s.value for s in before if s.name == metric}
    total = 0.0
    for sample in (s for s in after if s.name == metric and _counts(s, exclude, selector or {})):
        previous = old.get(sample.key(), 0.0)
        total += sample.value - previous if sample.value >= previous else sample.value
    return total


def _counts(sample: Sample, exclude: dict[str, list[str]], selector: dict[str, str]) -> bool:
    if any(sample.labels.get(name) in values for name, values in exclude.items()):
        return False
    return all(re.fullmatch(pattern, sample.labels.get(name, "")) for name, pattern in selector.items())


def agrees(ours: float, theirs: float, tolerance: float) -> bool:
    """Within `tolerance` of the larger count, and never stricter than one request either way."""
    return abs(ours - theirs) <= max(tolerance * max(ours, theirs), 1.0)


def _comparison(what: str, ours: float, theirs: float, spec: Telemetry) -> list[Metric]:
    diff = abs(ours - theirs) / max(ours, theirs, 1.0)
    return [Metric(name=f"telemetry.{what}", value=ours, unit="count"),
            Metric(name=f"telemetry.locust_{what}", value=theirs, unit="count"),
            Metric(name=f"telemetry.{what}_difference", value=round(diff, 4), unit="ratio",
                   threshold=spec.tolerance, operator="<=", passed=agrees(ours, theirs, spec.tolerance))]


def _missing(spec: Telemetry, name: str) -> Finding:
    return Finding(kind=FINDING_KIND, rule="telemetry-missing-metric", severity=spec.severity,
                   title=f"telemetry: required metric {name} is missing", location=spec.url,
                   evidence=f"no sample named {name} (or {name}_bucket/_count/_sum/_total) in the scrape after the load",
                   fingerprint=fingerprint(FINDING_KIND, "telemetry-missing-metric", name), blocking=True,
                   data={"metric": name})


def _disagrees(spec: Telemetry, what: str, ours: float, theirs: float) -> Finding:
    selector = ", ".join(f'{k}=~"{v}"' for k, v in spec.errors_selector.items()) if what == "errors" else ""
    counter = f"{spec.requests_metric}{{{selector}}}" if selector else spec.requests_metric
    title = (f"telemetry: the service counted {ours:g} {what} ({counter} increase) but Locust counted "
             f"{theirs:g} — more than {spec.tolerance:.0%} apart")
    excluded = "; ".join(f"{k} in {v}" for k, v in spec.exclude.items()) or "nothing"
    return Finding(kind=FINDING_KIND, rule=f"telemetry-{what}-mismatch", severity=spec.severity, title=title,
                   location=spec.url, evidence=f"{counter} after − before = {ours:g} (excluded: {excluded}); "
                                               f"Locust {what}: {theirs:g}; tolerance {spec.tolerance:g}",
                   fingerprint=fingerprint(FINDING_KIND, f"telemetry-{what}-mismatch", spec.requests_metric),
                   blocking=True, data={"service": ours, "locust": theirs, "tolerance": spec.tolerance})
