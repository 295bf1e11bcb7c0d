"""Running Locust headless against the service for one attempt: its command line and environment per profile
(the helper files beside the locustfile, worker processes when distributed), the service's own metrics scraped
before and after, and the files it must have written, read into a `Measurement`.

Evidence per attempt: `run<N>.log`, Locust's CSVs, HTML and JSON, `metrics-before-<N>.prom` /
`metrics-after-<N>.prom` (with `load.telemetry`) and series.json (the time series for the report's charts).
"""

from __future__ import annotations

import json
from pathlib import Path

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.environment import Environment
from releasegate.policy import Load, fill
from releasegate.stages.base import ToolRun, find_tool, last_error_line, run_tool
from releasegate.stages.locust_output import (
    Measurement,
    locust_json_totals,
    parse_stats_csv,
    parse_stats_history,
    time_series,
)
from releasegate.stages.telemetry import scrape

SHAPES = Path(__file__).resolve().parent / "locust_shapes"
STRESS_SHAPE = SHAPES / "releasegate_stress_shape.py"
PERCENTILE_WINDOW = SHAPES / "releasegate_percentile_window.py"
# Locust runs with --exit-code-on-error 0 (failed requests are measured, not a crash), so 0 is its only status
# for "it ran"; 2 (an unhandled exception in a greenlet), any other status, a signal or a timeout is an error.
LOCUST_OK = (0,)


def measure(load: Load, ctx: RunContext, env: Environment, folder: Path, attempt: int) -> Measurement:
    folder.mkdir(parents=True, exist_ok=True)
    prefix = folder / f"run{attempt}"
    locustfile = ctx.source / load.locustfile
    if not locustfile.is_file():
        raise StageError(f"load.locustfile: {locustfile} not found in the service source — check the path")
    for old in folder.glob(f"{prefix.name}[._-]*"):  # this attempt reads only what this attempt's Locust writes
        old.unlink()
    before = _scrape(load, env, folder / f"metrics-before-{attempt}.prom")
    run = run_tool(locust_argv(load, locustfile, env.base_url, prefix), cwd=ctx.source,
                   timeout_s=load.timeout_s + planned_seconds(load), env=locust_env(load),
                   log_to=folder / f"run{attempt}.log", ok=LOCUST_OK)
    after = _scrape(load, env, folder / f"metrics-after-{attempt}.prom")
    stats_csv, history_csv = Path(f"{prefix}_stats.csv"), Path(f"{prefix}_stats_history.csv")
    measured = Measurement(parse_stats_csv(_output(stats_csv, run), str(stats_csv)),
                           parse_stats_history(_output(history_csv, run), str(history_csv)),
                           (before[0], after[0], before[1] or after[1]), locust_json_totals(Path(f"{prefix}.json")))
    write_json(folder / "series.json", {"profile": load.profile, "attempt": attempt,
                                        **time_series(measured.history)})
    return measured


def _output(path: Path, run: ToolRun) -> str:
    """A file Locust must have written in this attempt, or StageError saying it did not."""
    if not path.is_file():
        raise StageError(_no_output(run, f"wrote no {path.name}"))
    text = path.read_text(encoding="utf-8")
    if not text.strip():
        raise StageError(_no_output(run, f"{path.name} is empty"))
    return text


def _no_output(run: ToolRun, what: str) -> str:
    return f"{run.ending()} but {what}; last output: {last_error_line(run.stderr, run.stdout)} — see {run.log}"


def _scrape(load: Load, env: Environment, keep: Path) -> tuple[str | None, str]:
    """The service's own metrics, kept as evidence; (None, why) when the endpoint does not answer."""
    if load.telemetry is None:
        return None, ""
    url = fill(load.telemetry.url, {"base_url": env.base_url, "host": env.host, "port": str(env.port)})
    try:
        text = scrape(url, load.telemetry.timeout_s)
    except StageError as exc:
        return None, str(exc)
    keep.write_text(text, encoding="utf-8")
    return text, ""


def locust_argv(load: Load, locustfile: Path, base_url: str, prefix: Path) -> list[str]:
    """Locust's command line for the profile: helper files beside the locustfile, workers if distributed."""
    files = [str(locustfile)] + [str(p) for p in helper_files(load)]
    argv = [find_tool("locust"), "-f", ",".join(files), "--headless", "--host", base_url,
            "--csv", str(prefix), "--csv-full-history", "--html", f"{prefix}-report.html", "--json-file", str(prefix),
            "--only-summary", "--stop-timeout", "5", "--exit-code-on-error", "0", "--loglevel", "WARNING"]
    if load.profile != "stress":  # the stress shape sets users and stops the run itself
        argv += ["-u", str(load.users), "-r", f"{load.spawn_rate:g}", "-t", f"{round(load.duration_s)}s"]
    if load.distributed is not None:
        workers = load.distributed.workers
        argv += ["--processes", "-1" if workers == "auto" else str(workers)]
    return argv


def helper_files(load: Load) -> list[Path]:
    return {"stress": [STRESS_SHAPE, PERCENTILE_WINDOW], "soak": [PERCENTILE_WINDOW]}.get(load.profile, [])


def locust_env(load: Load) -> dict[str, str]:
    """Parameters for the helper files (they read the environment, not the gate)."""
    if load.profile == "stress":
        s = load.stress_spec()
        return {"RELEASEGATE_STRESS_START_USERS": str(s.start_users), "RELEASEGATE_STRESS_STEP_USERS": str(s.step_users),
                "RELEASEGATE_STRESS_STEP_DURATION_S": f"{s.step_duration_s:g}",
                "RELEASEGATE_STRESS_MAX_USERS": str(s.max_users), "RELEASEGATE_STRESS_SPAWN_RATE": f"{load.spawn_rate:g}",
                "RELEASEGATE_PERCENTILE_WINDOW_S": f"{s.step_duration_s:g}"}
    if load.profile == "soak":
        return {"RELEASEGATE_PERCENTILE_WINDOW_S": f"{load.soak_spec().window_s:g}"}
    return {}


def planned_seconds(load: Load) -> float:
    if load.profile == "stress":
        s = load.stress_spec()
        return len(s.targets()) * s.step_duration_s
    return load.duration_s


def write_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
