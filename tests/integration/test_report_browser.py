"""The report's charts in a real headless Chromium: they lay out, and every data point is drawn.

The report is rendered by the real `compile_report` from recorded Locust output (tests/fixtures/locust/)
and a sample chaos timeline. Only the test's copy of the report gets a small probe script that measures
the laid-out SVG and writes what it found into the DOM, which Chromium then dumps (--dump-dom). The
report itself carries no script. Chromium comes from scripts/install-system-deps.sh (Debian `chromium`);
without it the test skips, and under CI=true it fails.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from releasegate.context import RunContext
from releasegate.domain.models import Decision, Metric, StageResult, Status, Verdict
from releasegate.policy import Budgets
from releasegate.report import compile_report
from releasegate.stages import load_profiles as lp

CHROMIUM = Path("/usr/bin/chromium")
LOCUST = Path(__file__).resolve().parents[1] / "fixtures" / "locust"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1200,3000", "--virtual-time-budget=5000"]
PROBE = """<script>
(function () {
  var out = [];
  document.querySelectorAll("figure.chart-figure").forEach(function (fig) {
    var svg = fig.querySelector("svg"), box = svg.getBoundingClientRect();
    var inside = function (r) { return r.width > 0 && r.left >= box.left - 1 && r.right <= box.right + 1
                                       && r.top >= box.top - 1 && r.bottom <= box.bottom + 1; };
    var pts = Array.prototype.slice.call(svg.querySelectorAll("circle.point"));
    var lines = Array.prototype.slice.call(svg.querySelectorAll("polyline"));
    var bars = Array.prototype.slice.call(svg.querySelectorAll("g.event rect"));
    out.push({id: fig.id, width: box.width, height: box.height,
              points: pts.length, points_drawn: pts.filter(function (p) { return inside(p.getBoundingClientRect()); }).length,
              line_length: lines.reduce(function (s, l) { return s + l.getTotalLength(); }, 0),
              bars_drawn: bars.filter(function (b) { return inside(b.getBoundingClientRect()); }).length});
  });
  var pre = document.createElement("pre"); pre.id = "rg-probe"; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
</script>"""


@pytest.fixture
def chromium() -> Path:
    if not CHROMIUM.is_file():
        reason = f"{CHROMIUM} not found — run scripts/install-system-deps.sh (Debian package chromium)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{reason} (CI=true: the CI machine installs it, so this is an error)")
        pytest.skip(reason)
    return CHROMIUM


def recorded_evidence(folder: Path) -> dict[str, int]:
    """The load stage's evidence documents from recorded runs; returns how many points each chart should get."""
    rows = lp.parse_stats_history((LOCUST / "stress_stats_history.csv").read_text())
    outcome = lp.stress_outcome(rows, [2, 4, 6], Budgets(p95_ms=10), {})
    soak = json.loads((LOCUST / "gate-soak.json").read_text())
    timeline = [{"start_s": 0, "end_s": 12, "label": "steady state probe", "kind": "probe"},
                {"start_s": 3, "end_s": 7, "label": "kill the database", "kind": "action"},
                {"start_s": 7, "end_s": 9, "label": "restart", "kind": "rollback"}]
    (folder / "locust").mkdir(parents=True)
    (folder / "chaos").mkdir()
    (folder / "locust" / "series.json").write_text(json.dumps(lp.time_series(rows)))
    (folder / "locust" / "stress-steps.json").write_text(json.dumps(
        {"steps": [s.as_dict() for s in outcome.steps], "breaking_users": outcome.steps[outcome.broke_at].users}))
    (folder / "locust" / "soak.json").write_text(json.dumps(soak))
    (folder / "chaos" / "timeline.json").write_text(json.dumps(timeline))
    measured = sum(r.p50_ms is not None for r in lp.of_name(rows))
    return {"chart-latency": 3 * measured, "chart-throughput": 3 * len(lp.of_name(rows)),
            "chart-stress": 2 * len(outcome.steps), "chart-memory": len(soak["rss_samples"]), "chart-chaos": 0}


def render_report(tmp_path: Path) -> tuple[Path, dict[str, int]]:
    evidence = tmp_path / "evidence"
    expected = recorded_evidence(evidence)
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    ctx = RunContext(run_id="rg-browser", service="inventory", version="1.0.0", policy_path="gate.yaml",
                     evidence_dir=str(evidence), workspace=str(tmp_path), started=now)
    result = StageResult(stage="locust", kind="load", status=Status.passed, started=now, finished=now,
                         summary="locust: recorded", metrics=[Metric(name="requests", value=276)])
    paths = compile_report(ctx, "sha256:test", [result], Verdict(decision=Decision.GO, decided_at=now),
                           tool_versions={"locust": "2.47.0"})
    return paths.html, expected


def probe(chromium: Path, html: Path, tmp_path: Path) -> list[dict]:
    probed = html.with_name("report.probe.html")
    probed.write_text(html.read_text(encoding="utf-8").replace("</body>", PROBE + "\n</body>"), encoding="utf-8")
    profile = tmp_path / "chromium-profile"
    run = subprocess.run([str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                          probed.as_uri()], capture_output=True, text=True, timeout=120, check=False)
    shutil.rmtree(profile, ignore_errors=True)
    found = re.search(r'<pre id="rg-probe">(.*?)</pre>', run.stdout, re.S)
    assert found, f"chromium exited {run.returncode} without the probe's output: {run.stderr[-1500:]}"
    return json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))


def test_report_charts_render_with_every_data_point(chromium, tmp_path):
    html, expected = render_report(tmp_path)
    assert "<script" not in html.read_text(encoding="utf-8")  # the report itself runs nothing
    charts = {c["id"]: c for c in probe(chromium, html, tmp_path)}
    assert sorted(charts) == sorted(expected)
    for chart_id, points in expected.items():
        chart = charts[chart_id]
        assert chart["width"] > 300 and chart["height"] > 150, chart
        assert chart["points"] == chart["points_drawn"] == points, chart
    assert all(charts[c]["line_length"] > 100 for c in expected if c != "chart-chaos")
    assert charts["chart-chaos"]["bars_drawn"] == 3
