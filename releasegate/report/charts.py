"""Charts for the report as inline SVG strings: no JavaScript, no network, pure functions.

`line_chart` draws one polyline per series with a `<circle class="point">` per data point, axes with
ticks, a legend and optional markers (e.g. the stress breaking point); `timeline_chart` draws events
(e.g. chaos actions) as bars on a time axis. `run_charts` turns the evidence documents the load and
chaos stages write (locust/series.json, locust/stress-steps.json, locust/soak.json,
chaos/timeline.json) into the charts that have data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 30, 58
COLORS = ["#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df", "#bf3989"]
KIND_COLORS = {"action": "#cf222e", "probe": "#0969da", "rollback": "#1a7f37", "fault": "#9a6700",
               "experiment": "#8c959f", "steady-state": "#8250df"}

Point = tuple[float, float]


@dataclass(frozen=True)
class Chart:
    id: str
    title: str
    svg: str


@dataclass(frozen=True)
class Scale:
    """Maps data values onto the plot area."""

    lo: float
    hi: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        span = self.hi - self.lo
        return self.start + ((value - self.lo) / span if span else 0.5) * (self.end - self.start)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round tick values covering [lo, hi]: steps of 1, 2 or 5 times a power of ten."""
    if hi <= lo:
        hi = lo + 1
    raw = (hi - lo) / max(count, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.floor(lo / step) * step
    ticks = [first]
    while ticks[-1] < hi - 1e-9:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def _label(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.2e}"


def _svg_open(title: str, kind: str) -> list[str]:
    return [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" role="img" '
            f'aria-label="{escape(title)}" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
            'font-family="system-ui, sans-serif" font-size="11">',
            f"<title>{escape(title)}</title>",
            f'<text x="{WIDTH / 2}" y="16" text-anchor="middle" font-size="13" font-weight="600">'
            f"{escape(title)}</text>"]


def _axes(x: Scale, y: Scale, xticks: list[float], yticks: list[float], x_unit: str, y_unit: str) -> list[str]:
    bottom, left = HEIGHT - BOTTOM, LEFT
    out = ['<g class="axes" stroke="#57606a">',
           f'<line class="axis x-axis" x1="{left}" y1="{bottom}" x2="{WIDTH - RIGHT}" y2="{bottom}"/>',
           f'<line class="axis y-axis" x1="{left}" y1="{TOP}" x2="{left}" y2="{bottom}"/></g>']
    for t in xticks:
        px = x(t)
        out.append(f'<g class="tick x-tick"><line x1="{px:.1f}" y1="{bottom}" x2="{px:.1f}" y2="{bottom + 4}" '
                   f'stroke="#57606a"/><text x="{px:.1f}" y="{bottom + 15}" text-anchor="middle">{_label(t)}</text></g>')
    for t in yticks:
        py = y(t)
        out.append(f'<g class="tick y-tick"><line x1="{left}" y1="{py:.1f}" x2="{WIDTH - RIGHT}" y2="{py:.1f}" '
                   f'stroke="#d0d7de" stroke-dasharray="2,3"/><text x="{left - 5}" y="{py + 4:.1f}" '
                   f'text-anchor="end">{_label(t)}</text></g>')
    out.append(f'<text class="x-unit" x="{(LEFT + WIDTH - RIGHT) / 2}" y="{bottom + 30}" '
               f'text-anchor="middle">{escape(x_unit)}</text>')
    out.append(f'<text class="y-unit" x="12" y="{(TOP + bottom) / 2}" text-anchor="middle" '
               f'transform="rotate(-90 12 {(TOP + bottom) / 2})">{escape(y_unit)}</text>')
    return out


def _legend(names: list[str], colors: list[str]) -> list[str]:
    out, x = ['<g class="legend">'], LEFT
    for name, color in zip(names, colors):
        out.append(f'<rect x="{x}" y="{HEIGHT - 14}" width="10" height="10" fill="{color}"/>'
                   f'<text x="{x + 14}" y="{HEIGHT - 5}">{escape(name)}</text>')
        x += 24 + 7 * len(name)
    return out + ["</g>"]


def _series(name: str, points: list[Point], color: str, x: Scale, y: Scale) -> list[str]:
    coords = [(x(px), y(py)) for px, py in points]
    out = [f'<g class="series" data-series="{escape(name)}" data-points="{len(points)}">',
           f'<polyline fill="none" stroke="{color}" stroke-width="1.5" '
           f'points="{" ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)}"/>']
    out += [f'<circle class="point" cx="{cx:.1f}" cy="{cy:.1f}" r="2.5" fill="{color}">'
            f"<title>{escape(name)}: {_label(px)}, {_label(py)}</title></circle>"
            for (cx, cy), (px, py) in zip(coords, points)]
    return out + ["</g>"]


def _marker(marker: dict, x: Scale, y: Scale) -> list[str]:
    px = x(float(marker["x"]))
    right = px < (LEFT + WIDTH - RIGHT) / 2  # the label goes where there is room
    label = escape(str(marker.get("label", "")))
    out = [f'<g class="marker"><line x1="{px:.1f}" y1="{TOP}" x2="{px:.1f}" y2="{HEIGHT - BOTTOM}" '
           f'stroke="#cf222e" stroke-dasharray="4,3"/>',
           f'<text x="{px + (4 if right else -4):.1f}" y="{TOP + 10}" fill="#cf222e" '
           f'text-anchor="{"start" if right else "end"}">{label}</text>']
    if marker.get("y") is not None:
        out.append(f'<circle class="marker-point" cx="{px:.1f}" cy="{y(float(marker["y"])):.1f}" r="5" '
                   f'fill="none" stroke="#cf222e" stroke-width="2"/>')
    return out + ["</g>"]


def line_chart(series: dict[str, list[Point]], title: str, y_unit: str, markers: list[dict] | None = None,
               x_unit: str = "seconds") -> str:
    """An SVG line chart; points whose value is None are left out. Markers: {x, y?, label}."""
    clean = {name: [(float(a), float(b)) for a, b in pts if a is not None and b is not None]
             for name, pts in series.items()}
    clean = {name: pts for name, pts in clean.items() if pts}
    xs = [p[0] for pts in clean.values() for p in pts] + [float(m["x"]) for m in markers or []] or [0.0]
    ys = [p[1] for pts in clean.values() for p in pts] or [0.0]
    xticks, yticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(0.0, min(ys)), max(ys))
    x = Scale(xticks[0], xticks[-1], LEFT, WIDTH - RIGHT)
    y = Scale(yticks[0], yticks[-1], HEIGHT - BOTTOM, TOP)
    colors = [COLORS[i % len(COLORS)] for i in range(len(clean))]
    out = _svg_open(title, "line") + _axes(x, y, xticks, yticks, x_unit, y_unit)
    for (name, pts), color in zip(clean.items(), colors):
        out += _series(name, pts, color, x, y)
    for marker in markers or []:
        out += _marker(marker, x, y)
    return "\n".join(out + _legend(list(clean), colors) + ["</svg>"])


def timeline_chart(events: list[dict], title: str) -> str:
    """Events {start_s, end_s, label, kind} as bars on a time axis, one lane per event (in start order)."""
    ordered = sorted(events, key=lambda e: (float(e["start_s"]), float(e.get("end_s") or e["start_s"])))
    ends = [float(e.get("end_s") or e["start_s"]) for e in ordered] or [1.0]
    xticks = nice_ticks(min([0.0] + [float(e["start_s"]) for e in ordered]), max(ends))
    x = Scale(xticks[0], xticks[-1], LEFT, WIDTH - RIGHT)
    lane = min((HEIGHT - BOTTOM - TOP) / max(len(ordered), 1), 28)
    out = _svg_open(title, "timeline") + _axes(x, Scale(0, 1, HEIGHT - BOTTOM, TOP), xticks, [], "seconds", "")
    kinds: list[str] = []
    for i, event in enumerate(ordered):
        kind = str(event.get("kind", "event"))
        kinds += [] if kind in kinds else [kind]
        out.append(_event_bar(event, x, TOP + i * lane, max(lane - 4, 2), _kind_color(kind, kinds)))
    return "\n".join(out + _legend(kinds, [_kind_color(k, kinds) for k in kinds]) + ["</svg>"])


def _kind_color(kind: str, kinds: list[str]) -> str:
    return KIND_COLORS.get(kind, COLORS[kinds.index(kind) % len(COLORS)])


def _event_bar(event: dict, x: Scale, top: float, height: float, color: str) -> str:
    start = float(event["start_s"])
    end = float(event.get("end_s") or start)
    left, width = x(start), max(x(end) - x(start), 3)
    label = escape(str(event.get("label", "")))
    return (f'<g class="event" data-kind="{escape(str(event.get("kind", "event")))}">'
            f'<rect x="{left:.1f}" y="{top:.1f}" width="{width:.1f}" height="{height:.1f}" fill="{color}" '
            f'fill-opacity="0.75"><title>{label}: {_label(start)}–{_label(end)} s</title></rect>'
            f'<text x="{left + 3:.1f}" y="{top + min(height, 14) - 3:.1f}" fill="#1f2328">{label}</text></g>')


def _columns(doc: dict, x: str, y: str) -> list[Point]:
    return [(a, b) for a, b in zip(doc.get(x) or [], doc.get(y) or []) if a is not None and b is not None]


def latency_chart(series: dict) -> Chart | None:
    lines = {label: _columns(series, "t_s", key) for label, key in
             (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms"))}
    if not any(lines.values()):
        return None
    title = "Latency percentiles over time"
    return Chart("latency", title, line_chart({k: v for k, v in lines.items() if v}, title, "ms"))


def throughput_chart(series: dict) -> Chart | None:
    lines = {"requests/s": _columns(series, "t_s", "rps"), "failures/s": _columns(series, "t_s", "failures_per_s"),
             "users": _columns(series, "t_s", "users")}
    if not lines["requests/s"]:
        return None
    title = "Throughput and users over time"
    return Chart("throughput", title, line_chart(lines, title, "per second / users"))


def stress_chart(steps_doc: dict) -> Chart | None:
    steps = steps_doc.get("steps") or []
    points = [(s["users"], s["p95_ms"]) for s in steps if s.get("p95_ms") is not None]
    if not points:
        return None
    markers = []
    broke = steps_doc.get("breaking_users")
    if broke is not None:
        at = next((s for s in steps if s["users"] == broke), None)
        markers.append({"x": broke, "y": at.get("p95_ms") if at else None, "label": f"breaks at {broke} users"})
    title = "Stress: p95 by users"
    rps = [(s["users"], s["rps"]) for s in steps if s.get("rps") is not None]
    return Chart("stress", title, line_chart({"p95 ms": points, "requests/s": rps}, title, "ms / req/s",
                                             markers=markers, x_unit="users"))


def memory_chart(soak_doc: dict) -> Chart | None:
    samples = [(t, mb) for t, mb in soak_doc.get("rss_samples") or []]
    if not samples:
        return None
    title = "Service memory (RSS) during the soak"
    return Chart("memory", title, line_chart({"RSS MB": samples}, title, "MB"))


def chaos_chart(timeline: list[dict] | dict) -> Chart | None:
    events = timeline.get("events", []) if isinstance(timeline, dict) else timeline
    if not events:
        return None
    title = "Chaos timeline"
    return Chart("chaos", title, timeline_chart(events, title))


def run_charts(series: dict | None = None, stress_steps: dict | None = None, soak: dict | None = None,
               chaos_timeline: list[dict] | dict | None = None) -> list[Chart]:
    """The charts that have data, in reading order."""
    candidates = [latency_chart(series or {}), throughput_chart(series or {}), stress_chart(stress_steps or {}),
                  memory_chart(soak or {}), chaos_chart(chaos_timeline or [])]
    return [c for c in candidates if c is not None]
