"""The OSV data pip-audit is judged against: the endpoint it queries (a loopback mirror over the policy's
`osv_data` for the stage's duration, else `osv_url`), a preflight query that proves the endpoint answers, and
the data's provenance (the file's digest, size and newest `modified`, so its age; or the URL, whose data the
gate cannot see).
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from releasegate import trace
from releasegate.domain.errors import StageError
from releasegate.domain.models import AdvisoryData, Metric, sha256_file
from releasegate.policy import PipAudit, Policy
from releasegate.servers.osv_mirror import OsvMirror

PREFLIGHT_QUERY = {"package": {"name": "pip", "ecosystem": "PyPI"}, "version": "0.0.0"}
HTTP_TIMEOUT_S = 10


@contextmanager
def osv_endpoint(policy: Policy, spec: PipAudit) -> Iterator[tuple[str, OsvMirror | None]]:
    """The OSV query URL: a loopback mirror over osv_data for the duration, else the policy's osv_url."""
    if not spec.osv_data:
        yield str(spec.osv_url), None
        return
    data = policy.resolve(spec.osv_data)
    if not data.is_file():
        raise StageError(f"{policy.path}: scans.pip_audit.osv_data: {data} does not exist — "
                         "point it at OSV JSON lines (.gz allowed), relative to the policy")
    with OsvMirror(data) as mirror:
        trace.record("start", [sys.executable, "-m", "releasegate.servers.osv_mirror", str(data), "--port", str(mirror.port)],
                     Path.cwd(), port=mirror.port)
        yield mirror.url, mirror


def preflight(url: str) -> None:
    """The endpoint must answer an OSV query with 200 and a JSON object, or nothing it says is believed."""
    request = urllib.request.Request(url, data=json.dumps(PREFLIGHT_QUERY).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            body = json.loads(response.read() or b"null")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise StageError(f"pip-audit: OSV endpoint {url} did not answer a test query ({_reason(exc)}) — "
                         "start the mirror / fix scans.pip_audit.osv_url, or use osv_data for a local file") from None
    if not isinstance(body, dict):
        raise StageError(f"pip-audit: OSV endpoint {url} answered a test query with {type(body).__name__}, "
                         "not a JSON object — is it really an OSV /v1/query endpoint?")


def _reason(exc: Exception) -> str:
    return str(getattr(exc, "reason", None) or exc)


def advisory_data(policy: Policy, spec: PipAudit, url: str, mirror: OsvMirror | None,
                  started: datetime) -> AdvisoryData:
    """Which vulnerability data this audit is judged against: the file's digest, size and newest `modified` (its age
    at the stage's start), or the endpoint, whose data the gate cannot see."""
    if mirror is None:
        return AdvisoryData(source="osv_url", location=url)
    path = policy.resolve(str(spec.osv_data))
    newest = mirror.advisories.newest_modified
    age = round((started - newest).total_seconds() / 86400, 2) if newest is not None else None
    return AdvisoryData(source="osv_data", location=str(path), sha256=sha256_file(path),
                        advisories=len(mirror.advisories), newest_modified=newest, age_days=age,
                        max_age_days=spec.max_advisory_age_days)


def data_metrics(data: AdvisoryData) -> list[Metric]:
    """The data's size and age as metrics (an OSV URL gives none)."""
    if data.source != "osv_data":
        return []
    metrics = [Metric(name="advisories", value=data.advisories or 0)]
    if data.age_days is not None:
        metrics.append(Metric(name="advisory_age", value=data.age_days, unit="days", threshold=data.max_age_days,
                              operator="<=", passed=not data.stale))
    return metrics
