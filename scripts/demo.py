"""`make demo`: run the release_gate DAG itself on the embedded Airflow (SQLite, no server) for both demo
versions of the bundled inventory service, then print each verdict, its reasons and its report.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POLICY = "include/demo/gate.yaml"
VERSIONS = ("1.0.0", "1.1.0")


def airflow(*args: str, log: Path) -> int:
    with open(log, "ab") as out:
        return subprocess.run([str(BIN / "airflow"), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, check=False).returncode


def latest_run(service: str, version: str) -> dict | None:
    sys.path.insert(0, str(ROOT))
    from releasegate.records import store

    with store.unit_of_work() as uow:
        rows = uow.runs.latest(service=service, version=version, limit=1)
    return rows[0] if rows else None


def main() -> int:
    home = Path(os.environ.setdefault("AIRFLOW_HOME", str(ROOT / ".airflow")))
    home.mkdir(parents=True, exist_ok=True)
    log = home / "demo.log"
    print(f"releasegate demo: Airflow home {home}; full Airflow output in {log}", flush=True)
    if airflow("db", "migrate", log=log) != 0:
        print(f"airflow db migrate failed — see {log}", file=sys.stderr)
        return 2
    verdicts = []
    for version in VERSIONS:
        conf = json.dumps({"service": "inventory", "version": version, "policy": POLICY})
        print(f"\n== release_gate for inventory {version} (airflow dags test) ...", flush=True)
        code = airflow("dags", "test", "release_gate", "-c", conf, log=log)
        run = latest_run("inventory", version)
        verdict_file = Path(run["evidence_dir"]) / "verdict.json" if run else None
        # The DAG run fails for NO_GO and INCONCLUSIVE (its state is the answer), so the exit code alone says
        # nothing about whether a verdict exists: the run's verdict file does.
        if verdict_file is None or not verdict_file.is_file():
            print(f"   the DAG run did not produce a verdict (exit {code}) — see {log}")
            verdicts.append("INCONCLUSIVE")
            continue
        data = json.loads(verdict_file.read_text())
        verdicts.append(data["decision"])
        print(f"   {data['decision']}  run {data['run_id']}")
        for reason in data["reasons"]:
            print(f"   - [{reason['severity']}] {reason['stage']}: {reason['message']}")
        print(f"   report: {data['report']}")
    print("\nverdicts: " + ", ".join(f"{v} {d}" for v, d in zip(VERSIONS, verdicts)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
