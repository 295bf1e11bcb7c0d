"""A canary secret appears nowhere the gate keeps or shows anything: CLI output, every file under the gate's
home (evidence folder, database file), every text column of every table, the audit trail.

The canary is planted where a hostile tester found it leaking: printed by a failing demo test (in a database
URL), as a policy env value whose name says it is secret, as the password of a URL in a policy field
(scans.pip_audit.osv_url, which then fails: a stage error quoting the URL), and in the service's startup
stderr, once as the env value and once in a URL that lost a slash to path normalisation."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from sqlalchemy import MetaData, select

from releasegate.records import store
from releasegate.redact import MASK

pytestmark = pytest.mark.slow
CANARY = "canary-Zq8v41xT"  # also in the demo's failing unit test (include/demo/releases/*/tests/unit)
ENV_SECRET = f"{CANARY}-env"
OSV_URL = f"http://gate:{CANARY}-osv@127.0.0.1:9/v1/query"
STARTUP = (f'echo "inventory: startup credential $INVENTORY_API_TOKEN; mirror https:/svc:{CANARY}-path@mirror.internal/'
           f'simple" >&2; exec "$0" "$@"')


def plant_canaries(policy_path: Path) -> None:
    policy = yaml.safe_load(policy_path.read_text())
    environment = policy["environment"]
    environment["env"]["INVENTORY_API_TOKEN"] = ENV_SECRET
    environment["start"] = ["sh", "-c", STARTUP, "{python}", "-m", "flask", "--app", "inventory:create_app", "run",
                            "--host", "{host}", "--port", "{port}", "--no-reload"]
    policy["scans"]["pip_audit"].pop("osv_data")
    policy["scans"]["pip_audit"]["osv_url"] = OSV_URL
    policy_path.write_text(yaml.safe_dump(policy, sort_keys=False))


def test_canary_secret_is_redacted_everywhere(quick_policy, releasegate_home):
    plant_canaries(quick_policy)

    proc = subprocess.run([str(Path(sys.executable).parent / "releasegate"), "run", "--policy", str(quick_policy),
                           "--version", "1.1.0"], capture_output=True, text=True, timeout=600, env=os.environ,
                          check=False)

    assert proc.returncode == 3, proc.stderr[-3000:]  # pip-audit could not reach its OSV URL: INCONCLUSIVE
    assert CANARY not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"http://gate:{MASK}@127.0.0.1:9" in proc.stdout, "the stage error is reported, its password masked"

    metadata = MetaData()
    metadata.reflect(store.engine())
    with store.engine().connect() as connection:
        dumped = {table.name: [str(row) for row in connection.execute(select(table))] for table in metadata.sorted_tables}
    leaking_rows = {name: [row for row in table_rows if CANARY in row] for name, table_rows in dumped.items()}
    assert {name: found for name, found in leaking_rows.items() if found} == {}
    assert dumped["audit_events"] and dumped["stage_results"] and dumped["verdicts"]
    assert any(MASK in row for row in dumped["stage_results"]), "the failing test's message was stored, masked"
    assert any(MASK in row for row in dumped["audit_events"]), "the pip-audit error was audited, masked"

    files = [p for p in Path(releasegate_home).rglob("*") if p.is_file()]
    evidence = next(p.parent for p in files if p.name == "report.html")
    names = {p.relative_to(evidence).as_posix() for p in files if evidence in p.parents}
    assert {"policy.yaml", "provision/service.log", "stages/pip-audit.json", "verdict.json", "slack-payload.json",
            "MANIFEST.sha256"} <= names
    leaking = [str(p) for p in files if CANARY.encode() in p.read_bytes()]
    assert leaking == []
    service_log = (evidence / "provision" / "service.log").read_text()
    assert f"startup credential {MASK}; mirror https:/svc:{MASK}@mirror.internal" in service_log
    assert f"osv_url: http://gate:{MASK}@127.0.0.1:9/v1/query" in (evidence / "policy.yaml").read_text()
    assert not list((Path(releasegate_home) / "logs").rglob("*.log")), "the raw service logs were deleted"
