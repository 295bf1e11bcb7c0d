"""`releasegate trigger` against what can go wrong on the wire: a wait that never ends is bounded by --timeout in
total (the wait endpoint sends a line every interval, so a read timeout alone never fires), and an Airflow URL
with credentials in it never reaches the output."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from releasegate.airflow_glue.trigger import AirflowApi, TriggerError, wait

BIN = Path(sys.executable).parent


class _ForeverRunning(BaseHTTPRequestHandler):
    """Airflow's wait endpoint for a run that never finishes: a `running` line every 0.1 s."""

    def do_GET(self):  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.end_headers()
        try:
            for _ in range(600):
                self.wfile.write(b'{"state": "running"}\n')
                self.wfile.flush()
                time.sleep(0.1)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def endless_wait():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ForeverRunning)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.timeout(60)
def test_the_wait_gives_up_at_its_timeout_and_names_the_run(endless_wait):
    with pytest.raises(TriggerError) as raised:
        wait(AirflowApi(endless_wait, "token"), "manual__1", timeout_s=1, interval_s=0.1)
    assert "--timeout 1 s" in str(raised.value) and "'running'" in str(raised.value)
    assert raised.value.run_id == "manual__1"


def test_credentials_in_the_airflow_url_never_reach_the_output(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    env = {**os.environ, "RELEASEGATE_HOME": str(tmp_path),
           "RELEASEGATE_AIRFLOW_URL": f"http://admin:canary-Trg-9f31c2@127.0.0.1:{closed}",
           "RELEASEGATE_AIRFLOW_TOKEN": "x"}
    proc = subprocess.run([str(BIN / "releasegate"), "trigger", "--service", "inventory", "--version", "1.0.0",
                           "--policy", "include/demo/gate.yaml", "--wait", "--json"], env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert json.loads(proc.stdout)["decision"] is None
    assert "canary-Trg-9f31c2" not in proc.stdout + proc.stderr
