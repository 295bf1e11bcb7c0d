"""`airflow dags test` of the release_gate DAG with a policy that does not exist: open_run fails, no verdict is
told, and the DAG's failure notifier (Airflow runs the DAG's on_failure_callback) tells the loopback Slack server
through the Slack connection, with the DAG run and a link to it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.demo import ROOT
from tests.support.slack_server import SlackServer

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
TOKEN = "xoxb-test-4242-dagtest"


def test_a_run_that_breaks_in_open_run_tells_slack(tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path / "airflow"), "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "RELEASEGATE_HOME": str(tmp_path / "home"),
           "AIRFLOW__API__BASE_URL": "http://airflow.example:8080", "RELEASEGATE_SLACK_FAILURE_CHANNEL": "#gate-ops"}
    for name in ("RELEASEGATE_DB_URL", "RELEASEGATE_SLACK_TOKEN", "RELEASEGATE_SLACK_BASE_URL"):
        env.pop(name, None)
    migrate = subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
    assert migrate.returncode == 0, migrate.stdout[-2000:] + migrate.stderr[-2000:]
    conf = {"service": "inventory", "version": "1.0.0", "policy": str(tmp_path / "no-such" / "gate.yaml")}

    with SlackServer(token=TOKEN) as slack:
        env["AIRFLOW_CONN_SLACK_API_DEFAULT"] = json.dumps({"conn_type": "slack", "password": TOKEN,
                                                            "extra": {"base_url": slack.url}})
        proc = subprocess.run([str(BIN / "airflow"), "dags", "test", "release_gate", "-c", json.dumps(conf)],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)

    log = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Executing on_failure dag callback" in log, log[-3000:]
    (message,) = slack.top_level()
    assert message["channel"] == slack.channels["#gate-ops"]
    blocks = json.loads(message["blocks"])            # the provider's notifier sends blocks as a JSON string
    text = blocks[0]["text"]["text"]
    run_id = next(line.split("run `", 1)[1].split("`", 1)[0] for line in text.splitlines() if "run `" in line)
    assert run_id.startswith("manual__") and "The release gate broke before it could tell its verdict" in text
    assert "inventory@1.0.0" in text and f"http://airflow.example:8080/dags/release_gate/runs/{run_id}|" in text
