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


def record_run(run_id: str = "rg-1", service: str = "inventory", decision: str = "NO_GO") -> None:
    with store.unit_of_work() as uow:
        uow.runs.upsert({"run_id": run_id, "service": service, "version": "1.1.0<script>", "policy_path": "gate.yaml",
                         "policy_digest": "sha256:x", "evidence_dir": "/tmp/e", "started_at": STARTED,
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


def test_every_route_refuses_a_request_without_credentials():
    from fastapi.testclient import TestClient

    client = TestClient(load_plugin().create_app())

    assert [client.get(path).status_code for path in ("/", "/verdicts", "/verdicts?service=x")] == [401, 401, 401]
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
client.cookies.set("_token", viewer)
out["cookie"] = client.get("/releasegate/verdicts?service=inventory").status_code
out["body"] = client.get("/releasegate/verdicts?service=inventory").json()
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


def test_the_mounted_plugin_answers_only_airflow_users_who_may_read_the_gate_dag(airflow_home, releasegate_home):
    record_run()
    env = {**airflow_home, "RELEASEGATE_HOME": str(releasegate_home)}
    env.pop("RELEASEGATE_DB_URL", None)

    proc = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=300,
                          check=False)

    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in ("/releasegate/", "/releasegate/verdicts?service=inventory"):
        assert out[path] == {"anonymous": 401, "forged": 403, "no_role": 403, "viewer": 200}, path
    assert out["/releasegate/docs"]["viewer"] == 404
    assert out["cookie"] == 200
    assert [(r["run_id"], r["decision"]) for r in out["body"]] == [("rg-1", "NO_GO")]
