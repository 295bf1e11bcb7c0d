"""The Airflow plugin serves the verdict history from the gate's database."""

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

from fastapi.testclient import TestClient

from releasegate import store

PLUGIN = Path(__file__).resolve().parents[2] / "plugins" / "releasegate_plugin.py"


def load_plugin():
    spec = importlib.util.spec_from_file_location("releasegate_plugin", PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_plugin_lists_verdicts_as_json_and_html():
    started = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    with store.unit_of_work() as uow:
        uow.runs.upsert({"run_id": "rg-1", "service": "inventory", "version": "1.1.0", "policy_path": "gate.yaml",
                         "policy_digest": "sha256:x", "evidence_dir": "/tmp/e", "started_at": started,
                         "status": "running"})
        uow.runs.finish("rg-1", "finished", "NO_GO", started)
        uow.commit()
    module = load_plugin()
    plugin = module.ReleaseGatePlugin
    client = TestClient(plugin.fastapi_apps[0]["app"])
    data = client.get("/verdicts", params={"service": "inventory"}).json()
    assert [(r["run_id"], r["decision"]) for r in data] == [("rg-1", "NO_GO")]
    page = client.get("/").text
    assert "NO_GO" in page and "inventory" in page
    assert plugin.external_views[0]["href"] == "/releasegate/"
