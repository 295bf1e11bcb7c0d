"""Inline SVG charts: well-formed, one point per data point, no script, markers and legends."""

import xml.etree.ElementTree as ET
from pathlib import Path

from releasegate.report import charts
from releasegate.stages import load_profiles as lp

SVG = "{http://www.w3.org/2000/svg}"
LOCUST = Path(__file__).resolve().parents[1] / "fixtures" / "locust"


def parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def points(root: ET.Element) -> list[ET.Element]:
    return [c for c in root.iter(f"{SVG}circle") if c.get("class") == "point"]


def test_line_chart_has_a_point_per_value_axes_ticks_and_legend():
    svg = charts.line_chart({"p50": [(0, 3), (1, 4), (2, 5)], "p95": [(0, 7), (1, 9), (2, None)]}, "Latency", "ms")
    root = parse(svg)
    assert len(points(root)) == 5  # the None value is left out
    classes = [e.get("class") or "" for e in root.iter()]
    assert "axis x-axis" in classes and "axis y-axis" in classes
    assert classes.count("tick x-tick") >= 2 and classes.count("tick y-tick") >= 2
    assert [t.text for t in root.find(f"{SVG}g[@class='legend']").iter(f"{SVG}text")] == ["p50", "p95"]
    assert "<script" not in svg and "http://" not in svg.replace("http://www.w3.org/2000/svg", "")


def test_points_lie_inside_the_plot_area():
    root = parse(charts.line_chart({"rps": [(t, t * t) for t in range(10)]}, "T", "req/s"))
    for circle in points(root):
        assert charts.LEFT <= float(circle.get("cx")) <= charts.WIDTH - charts.RIGHT
        assert charts.TOP <= float(circle.get("cy")) <= charts.HEIGHT - charts.BOTTOM


def test_marker_is_drawn_at_the_breaking_point():
    root = parse(charts.line_chart({"p95": [(2, 7), (4, 11), (6, 30)]}, "Stress", "ms",
                                   markers=[{"x": 6, "y": 30, "label": "breaks at 6 users"}], x_unit="users"))
    marker = root.find(f"{SVG}g[@class='marker']")
    assert marker is not None and "breaks at 6 users" in "".join(marker.itertext())


def test_titles_are_escaped():
    svg = charts.line_chart({"<b>": [(0, 1)]}, "a & <b>", "ms")
    assert "<b>" not in svg and "a &amp; &lt;b&gt;" in svg
    parse(svg)


def test_nice_ticks_cover_the_range_with_round_steps():
    assert charts.nice_ticks(0, 9.3) == [0, 2, 4, 6, 8, 10]
    assert charts.nice_ticks(5, 5)[0] <= 5 <= charts.nice_ticks(5, 5)[-1]


def test_timeline_chart_draws_one_bar_per_event_with_kinds_in_the_legend():
    events = [{"start_s": 2, "end_s": 8, "label": "kill db", "kind": "action"},
              {"start_s": 0, "end_s": 12, "label": "steady state", "kind": "probe"}]
    root = parse(charts.timeline_chart(events, "Chaos"))
    bars = [g for g in root.iter(f"{SVG}g") if g.get("class") == "event"]
    assert [g.get("data-kind") for g in bars] == ["probe", "action"]
    assert [t.text for t in root.find(f"{SVG}g[@class='legend']").iter(f"{SVG}text")] == ["probe", "action"]


def test_run_charts_from_recorded_history_skip_what_has_no_data():
    rows = lp.parse_stats_history((LOCUST / "stress_stats_history.csv").read_text())
    steps = {"steps": [s.as_dict() for s in lp.stress_steps(rows, [2, 4, 6])], "breaking_users": 4}
    found = charts.run_charts(series=lp.time_series(rows), stress_steps=steps)
    assert [c.id for c in found] == ["latency", "throughput", "stress"]
    latency = parse(found[0].svg)
    assert len(points(latency)) == sum(r.p50_ms is not None for r in lp.of_name(rows)) * 3
    assert charts.run_charts() == []
