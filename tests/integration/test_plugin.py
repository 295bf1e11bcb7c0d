"""The Airflow plugin serves the verdict history from the gate's database, to authenticated Airflow users only.

The authentication test runs the real api-server application (`airflow.api_fastapi.app.create_app`) in a child
process, on a migrated Airflow metadata database, with the plugins folder of this repository: the plugin is
loaded and mounted by Airflow itself, and tokens come from Airflow's own auth manager.
"""

import importlib.util
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from releasegate.records import store

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = ROOT / "plugins" / "releasegate_plugin.py"
STARTED = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def load_plugin():
    spec = importlib.util.spec_from_file_location("releasegate_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


AIRFLOW_RUN = "manual__2026-11-24T09:00:00+00:00"


def record_run(run_id: str = "rg-1", service: str = "inventory", decision: str = "NO_GO",
               evidence_dir: str = "/tmp/e") -> None:
    with store.unit_of_work() as uow:
        uow.runs.upsert({"run_id": run_id, "service": service, "version": "1.1.0<script>", "policy_path": "gate.yaml",
                         "policy_digest": "sha256:x", "evidence_dir": evidence_dir, "started_at": STARTED,
                         "status": "running"})
        uow.runs.finish(run_id, "finished", decision, STARTED)
        uow.commit()


def test_history_page_and_listing_read_the_gate_database():
    record_run()
    module = load_plugin()

    rows = module.recent_runs("inventory")
    page = module.render_history(rows)

    assert [(r["run_id"], r["decision"]) for r in rows] == [("rg-1", "NO_GO")]
    assert "NO_GO" in page and "inventory" in page and "1.1.0&lt;script&gt;" in page
    assert module.ReleaseGatePlugin.external_views[0]["href"] == "/releasegate/"
    assert module.ReleaseGatePlugin.fastapi_apps[0]["url_prefix"] == "/releasegate"


def evidence_folder(root: Path) -> Path:
    """A gate run's evidence folder behind the Airflow run AIRFLOW_RUN, and a file beside it that must stay out."""
    folder = root / "evidence" / "run-1"
    (folder / "stages").mkdir(parents=True)
    (folder / "report.html").write_text("<!doctype html><h1>inventory 1.1.0: NO_GO</h1>", encoding="utf-8")
    (folder / "results.md").write_text("# Results\n", encoding="utf-8")
    (folder / "stages" / "semgrep.json").write_text("{}", encoding="utf-8")
    (root / "evidence" / "private.txt").write_text("not evidence", encoding="utf-8")
    (folder / "escape.txt").symlink_to(root / "evidence" / "private.txt")
    record_run(f"release_gate__{AIRFLOW_RUN}", evidence_dir=str(folder))
    return folder


def test_the_run_page_view_reads_only_files_inside_that_runs_evidence_folder(tmp_path):
    folder = evidence_folder(tmp_path)
    module = load_plugin()

    assert module.evidence_file(AIRFLOW_RUN, "report.html") == (folder / "report.html").resolve()
    assert module.evidence_file(AIRFLOW_RUN, "stages/semgrep.json") == (folder / "stages" / "semgrep.json").resolve()
    assert module.evidence_file(AIRFLOW_RUN, "../private.txt") is None        # out of the folder
    assert module.evidence_file(AIRFLOW_RUN, "escape.txt") is None            # a link out of the folder
    assert module.evidence_file(AIRFLOW_RUN, "stages") is None                # a folder is not a file
    assert module.evidence_file("scheduled__other", "report.html") is None    # no gate run behind that run
    assert module.evidence_file(AIRFLOW_RUN, "report.html\x00") is None      # a NUL byte: no file, no 500
    views = {v["url_route"]: v for v in module.ReleaseGatePlugin.external_views}
    assert views["releasegate-report"] == {"name": "Release report", "destination": "dag_run",
                                           "href": "/releasegate/runs/{RUN_ID}/evidence/report.html",
                                           "url_route": "releasegate-report"}


def test_every_route_refuses_a_request_without_credentials():
    from fastapi.testclient import TestClient

    client = TestClient(load_plugin().create_app())

    assert [client.get(path).status_code for path in ("/", "/verdicts", "/verdicts?service=x")] == [401, 401, 401]
    assert client.get("/runs/x/report", follow_redirects=False).status_code == 401
    assert client.get("/runs/x/evidence/report.html").status_code == 401
    assert client.get("/docs").status_code == 404 and client.get("/openapi.json").status_code == 404


PROBE = r"""
import json, sys
from fastapi.testclient import TestClient
from airflow.api_fastapi.app import create_app, get_auth_manager
from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

client = TestClient(create_app("all"))
manager = get_auth_manager()
viewer = manager.generate_jwt(SimpleAuthManagerUser(username="vera", role="viewer"))
no_role = manager.generate_jwt(SimpleAuthManagerUser(username="nobody", role=None))
bearer = lambda token: {"Authorization": f"Bearer {token}"}
out = {}
for path in ("/releasegate/", "/releasegate/verdicts?service=inventory", "/releasegate/docs"):
    out[path] = {
        "anonymous": client.get(path).status_code,
        "forged": client.get(path, headers=bearer(viewer[:-4] + "AAAA")).status_code,
        "no_role": client.get(path, headers=bearer(no_role)).status_code,
        "viewer": client.get(path, headers=bearer(viewer)).status_code,
    }
from urllib.parse import quote
run = quote(sys.argv[1], safe="")
report = f"/releasegate/runs/{run}/evidence/report.html"
out["report"] = {
    "anonymous": client.get(report).status_code,
    "forged": client.get(report, headers=bearer(viewer[:-4] + "AAAA")).status_code,
    "no_role": client.get(report, headers=bearer(no_role)).status_code,
}
page = client.get(report, headers=bearer(viewer))
out["report_page"] = [page.status_code, page.text, page.headers.get("content-type"),
                      page.headers.get("content-security-policy")]
moved = client.get(f"/releasegate/runs/{run}/report", headers=bearer(viewer), follow_redirects=False)
out["report_redirect"] = [moved.status_code, moved.headers.get("location")]
out["results_md"] = client.get(f"/releasegate/runs/{run}/evidence/results.md", headers=bearer(viewer)).status_code
out["outside"] = [client.get(f"/releasegate/runs/{run}/evidence/%2e%2e%2fprivate.txt", headers=bearer(viewer)).status_code,
                  client.get(f"/releasegate/runs/{run}/evidence/escape.txt", headers=bearer(viewer)).status_code,
                  client.get("/releasegate/runs/other/evidence/report.html", headers=bearer(viewer)).status_code]
plugins = client.get("/api/v2/plugins", headers=bearer(viewer)).json()["plugins"]
out["views"] = [v for p in plugins if p["name"] == "releasegate" for v in p["external_views"]]
client.cookies.set("_token", viewer)
out["cookie"] = client.get("/releasegate/verdicts?service=inventory").status_code
out["body"] = client.get("/releasegate/verdicts?service=inventory").json()
out["report_cookie"] = client.get(report).status_code
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def airflow_home(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = {**os.environ, "AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"), "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
           "AIRFLOW__CORE__AUTH_MANAGER":
               "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
           "AIRFLOW__API_AUTH__JWT_SECRET": "releasegate-plugin-test-secret", "AIRFLOW__CORE__UNIT_TEST_MODE": "False"}
    migrate = subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env,
                             capture_output=True, text=True, timeout=300, check=False)
    assert migrate.returncode == 0, migrate.stderr[-2000:]
    return env


def test_the_mounted_plugin_answers_only_airflow_users_who_may_read_the_gate_dag(airflow_home, releasegate_home,
                                                                              tmp_path):
    record_run()
    evidence_folder(tmp_path)
    env = {**airflow_home, "RELEASEGATE_HOME": str(releasegate_home)}
    env.pop("RELEASEGATE_DB_URL", None)

    proc = subprocess.run([sys.executable, "-c", PROBE, AIRFLOW_RUN], env=env, capture_output=True, text=True,
                          timeout=300, check=False)

    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in ("/releasegate/", "/releasegate/verdicts?service=inventory"):
        assert out[path] == {"anonymous": 401, "forged": 403, "no_role": 403, "viewer": 200}, path
    assert out["/releasegate/docs"]["viewer"] == 404
    assert out["cookie"] == 200
    assert sorted((r["run_id"], r["decision"]) for r in out["body"]) == [
        ("release_gate__" + AIRFLOW_RUN, "NO_GO"), ("rg-1", "NO_GO")]
    # the run page's "Release report" tab: that run's report, to the same users only, nothing outside its folder
    assert out["report"] == {"anonymous": 401, "forged": 403, "no_role": 403}
    status, body, content_type, policy = out["report_page"]
    assert (status, body) == (200, "<!doctype html><h1>inventory 1.1.0: NO_GO</h1>")
    assert content_type.startswith("text/html") and "script-src" not in policy and "default-src 'none'" in policy
    assert out["report_redirect"] == [307, "evidence/report.html"]
    assert out["results_md"] == 200 and out["report_cookie"] == 200
    assert out["outside"] == [404, 404, 404]
    assert {(v["name"], v["destination"], v["href"]) for v in out["views"]} == {
        ("Release verdicts", "nav", "/releasegate/"),
        ("Release report", "dag_run", "/releasegate/runs/{RUN_ID}/evidence/report.html")}  # as Airflow lists them
