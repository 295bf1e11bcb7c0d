"""Airflow plugin: a verdict history view and JSON API in the Airflow UI (api-server), under /releasegate, and each
run's report on its DAG run page (a "Release report" tab: the run's evidence folder, served read-only).

The FastAPI app is built when the api-server loads plugins; it reads the gate's own database. Every
route authenticates like Airflow's own API: the caller's JWT (``Authorization: Bearer`` or the UI's
session cookie) through the configured auth manager, and read access to the runs of the release_gate
DAG (401 without credentials, 403 with a bad token or without that access). No OpenAPI docs are served.
"""

from __future__ import annotations

import html
import mimetypes
from pathlib import Path

from airflow.plugins_manager import AirflowPlugin

DECISION_COLOURS = {"GO": "#1a7f37", "NO_GO": "#cf222e", "INCONCLUSIVE": "#9a6700"}
DAG_ID = "release_gate"


def recent_runs(service: str | None = None, limit: int = 50) -> list[dict]:
    from releasegate.records import store

    with store.unit_of_work() as uow:
        return uow.runs.latest(service=service, limit=limit)


def render_history(rows: list[dict]) -> str:
    cells = "".join(
        f"<tr><td>{html.escape(str(r['started_at']))[:19]}</td><td>{html.escape(r['service'])}</td>"
        f"<td>{html.escape(r['version'])}</td><td style='color:{DECISION_COLOURS.get(r.get('decision') or '', '#555')};"
        f"font-weight:600'>{html.escape(r.get('decision') or r['status'])}</td>"
        f"<td><code>{html.escape(r['run_id'])}</code></td></tr>" for r in rows)
    return ("<!doctype html><meta charset='utf-8'><title>Release verdicts</title>"
            "<style>body{font-family:system-ui;margin:2rem}td,th{padding:.3rem .8rem;text-align:left}</style>"
            "<h1>Release verdicts</h1><table><tr><th>Started (UTC)</th><th>Service</th><th>Version</th>"
            f"<th>Decision</th><th>Run</th></tr>{cells}</table>")


# What a served evidence file may do in the browser: show itself (inline styles, inline SVG charts, data: images)
# inside Airflow's page; no scripts, no requests elsewhere.
EVIDENCE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                               "frame-ancestors 'self'",
                    "X-Content-Type-Options": "nosniff", "Cache-Control": "private, no-store"}


def evidence_file(airflow_run_id: str, relative: str) -> Path | None:
    """The file ``relative`` in the evidence folder of the gate run behind Airflow's release_gate run
    ``airflow_run_id``; None when there is no such run or file, or the path leads out of the folder."""
    from releasegate.records import store

    with store.unit_of_work() as uow:
        run = uow.runs.get(f"{DAG_ID}__{airflow_run_id}")
    if not run or not run.get("evidence_dir"):
        return None
    try:
        folder = Path(run["evidence_dir"]).resolve()
        target = (folder / relative).resolve()
        if not target.is_relative_to(folder) or not target.is_file():
            return None
    except (ValueError, OSError):  # a NUL byte, a name too long: no such file
        return None
    return target


def not_found_page(airflow_run_id: str, relative: str) -> str:
    return ("<!doctype html><meta charset='utf-8'><title>No report</title>"
            "<body style='font-family:system-ui;margin:2rem'><h1>No release gate evidence here</h1>"
            f"<p>No <code>{html.escape(relative)}</code> for run <code>{html.escape(airflow_run_id)}</code>. Only "
            f"runs of the <code>{DAG_ID}</code> DAG that opened a gate run have a report; a run that has not reached "
            "<code>compile_report</code> yet has none so far.</p>")


def requires_gate_read():
    """The dependency Airflow puts on its own DAG-run routes: an authenticated user who may read release_gate's runs."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity
    from airflow.api_fastapi.core_api.security import requires_access_dag

    return requires_access_dag(method="GET", access_entity=DagAccessEntity.RUN, param_dag_id=DAG_ID)


def create_app():
    from fastapi import Depends, FastAPI
    from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response

    app = FastAPI(title="releasegate", description="Release gate verdict history",
                  dependencies=[Depends(requires_gate_read())], docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/verdicts")
    def verdicts(service: str | None = None, limit: int = 50) -> list[dict]:
        return recent_runs(service, min(max(limit, 1), 500))

    @app.get("/", response_class=HTMLResponse)
    def history(service: str | None = None) -> str:
        return render_history(recent_runs(service))

    @app.get("/runs/{airflow_run_id}/report")
    def report(airflow_run_id: str) -> Response:
        return RedirectResponse("evidence/report.html", status_code=307)  # relative: whatever path Airflow is under

    @app.get("/runs/{airflow_run_id}/evidence/{relative:path}")
    def evidence(airflow_run_id: str, relative: str) -> Response:
        target = evidence_file(airflow_run_id, relative)
        if target is None:
            return HTMLResponse(not_found_page(airflow_run_id, relative), status_code=404, headers=EVIDENCE_HEADERS)
        media = "text/markdown; charset=utf-8" if target.suffix == ".md" else mimetypes.guess_type(target.name)[0]
        return FileResponse(target, media_type=media or "application/octet-stream", headers=EVIDENCE_HEADERS)

    return app


class ReleaseGatePlugin(AirflowPlugin):
    name = "releasegate"
    fastapi_apps = [{"app": create_app(), "url_prefix": "/releasegate", "name": "Release gate verdicts"}]
    external_views = [{"name": "Release verdicts", "href": "/releasegate/", "destination": "nav",
                       "url_route": "releasegate-verdicts"},
                      # a tab on every DAG run's page: Airflow's UI puts the run's id in for {RUN_ID}
                      {"name": "Release report", "href": "/releasegate/runs/{RUN_ID}/evidence/report.html",
                       "destination": "dag_run", "url_route": "releasegate-report"}]
