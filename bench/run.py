"""Benchmarks: each prints a ratio against a baseline measured in the same run (never an absolute time).

1. OSV mirror: indexed query vs a linear scan of every advisory (the naive mirror), over the real PyPA
   advisory data (../shared/data/osv, or $RELEASEGATE_OSV_DATA).
2. JUnit parsing: the gate's parse_junit vs bare ElementTree parsing of the same document (the overhead
   of building TestCases), time and peak memory.
3. decide(): 2,000 stage results with 20 findings each vs building the same objects (the decision's cost).
4. Scale (bench/scale.py): parsing, building, storing results, findings, defects and audit events, the report and
   redaction at 2,000 and 20,000 cases, and 200,000 with RELEASEGATE_BENCH_FULL=1 (minutes), each against a
   baseline measured in the same run (iterparse, COPY, executemany, json.dumps), with peak RSS.
"""

from __future__ import annotations

import os
import sys
import time
import tracemalloc
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from releasegate.domain.models import Finding, Severity, StageResult, Status  # noqa: E402
from releasegate.domain.verdict import ExpectedStage, decide  # noqa: E402
from releasegate.servers.osv_mirror import Advisories, matching, normalise_name, read_records  # noqa: E402
from releasegate.stages.junit import parse_junit  # noqa: E402

OSV = Path(os.environ.get("RELEASEGATE_OSV_DATA", ROOT.parent / "shared/data/osv/pypa-advisories.osv.jsonl.gz"))
QUERIES = [("requests", "2.19.0"), ("django", "3.2.0"), ("pyyaml", "5.3.1"), ("flask", "0.12.2"),
           ("jinja2", "2.10"), ("urllib3", "1.24.1"), ("pillow", "8.0.0"), ("aiohttp", "3.8.5")] * 25


def timed(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def peak_memory(fn) -> int:
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def bench_osv() -> None:
    if not OSV.is_file():
        print(f"osv-mirror: skipped, no advisory data at {OSV} (set RELEASEGATE_OSV_DATA)")
        return
    records = list(read_records(OSV))
    index = Advisories(records)

    def linear() -> int:
        return sum(len(matching([r for r in records if any(normalise_name(a.get("package", {}).get("name", "")) ==
                                                            normalise_name(n) for a in r.get("affected", []))], n, v))
                   for n, v in QUERIES)

    def indexed() -> int:
        return sum(len(index.query(n, v)) for n, v in QUERIES)

    assert linear() == indexed(), "the index must answer exactly what a full scan answers"
    base, ours = timed(linear, 1), timed(indexed)
    print(f"osv-mirror: {len(QUERIES)} queries over {len(records)} advisories: indexed is {base / ours:.0f}x faster "
          f"than a linear scan (ratio {ours / base:.4f})")


def junit_document(cases: int) -> str:
    rows = []
    for i in range(cases):
        body = '<failure message="assert 1 == 2">trace</failure>' if i % 10 == 0 else ""
        rows.append(f'<testcase classname="tests.unit.test_m{i % 50}" name="test_{i}" time="0.001">'
                    f'<properties><property name="nodeid" value="tests/unit/test_m{i % 50}.py::test_{i}"/></properties>'
                    f"{body}</testcase>")
    return f'<testsuites><testsuite name="pytest" tests="{cases}">{"".join(rows)}</testsuite></testsuites>'


def bench_junit() -> None:
    text = junit_document(20_000)
    base_t, ours_t = timed(lambda: ET.fromstring(text)), timed(lambda: parse_junit(text))
    base_m, ours_m = peak_memory(lambda: ET.fromstring(text)), peak_memory(lambda: parse_junit(text))
    print(f"junit: 20,000 test cases: parse_junit takes {ours_t / base_t:.2f}x the time and {ours_m / base_m:.2f}x "
          "the peak memory of bare ElementTree parsing")


def bench_decide() -> None:
    now = datetime(2026, 11, 24, tzinfo=UTC)

    def build() -> list[StageResult]:
        return [StageResult(stage=f"s{i}", kind="sast", status=Status.failed, started=now, finished=now,
                            findings=[Finding(kind="sast", rule=f"r{j}", severity=Severity.high, title="t",
                                              fingerprint=f"{i}-{j}") for j in range(20)]) for i in range(2_000)]

    results = build()
    expected = [ExpectedStage(f"s{i}") for i in range(2_000)]
    base, ours = timed(build, 1), timed(lambda: decide(results, expected, now))
    print(f"decide: 2,000 stages x 20 findings: deciding costs {ours / base:.2f}x building the results")


if __name__ == "__main__":
    bench_osv()
    bench_junit()
    bench_decide()
    import scale

    scale.main([])
