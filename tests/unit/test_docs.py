"""Docs that cannot drift: every policy example in the docs validates, and the README's commands exist."""

import re
from pathlib import Path

import pytest
import yaml

from releasegate.cli import build_parser
from releasegate.policy import load_policy

ROOT = Path(__file__).resolve().parents[2]
POLICY_DOC = ROOT / "docs" / "policy.md"
README = ROOT / "README.md"


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), flags=re.S)


@pytest.mark.parametrize("index", range(len(yaml_blocks(POLICY_DOC))))
def test_every_policy_example_in_the_guide_is_valid(tmp_path, index):
    target = tmp_path / "gate.yaml"
    target.write_text(yaml_blocks(POLICY_DOC)[index])
    assert load_policy(target).service


def test_the_guide_has_an_example_per_framework():
    text = POLICY_DOC.read_text()
    assert {"## Flask", "## FastAPI", "## Django"} <= set(re.findall(r"^## \w+", text, flags=re.M))


def test_readme_names_the_two_setup_commands_and_ci_calls_the_test_one():
    text = README.read_text()
    assert "make demo" in text and "make test" in text
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def documented_commands() -> list[str]:
    text = README.read_text() + POLICY_DOC.read_text()
    text = text.replace("\\\n", " ")
    found = re.findall(r"releasegate ((?:run|trigger|policy|db|runs|waive|waivers|audit|defects|notify|attestation)\b[^`\n;#]*)", text)
    return sorted({c.strip() for c in found})


@pytest.mark.parametrize("command", documented_commands())
def test_documented_releasegate_commands_parse(command):
    import shlex

    argv = [a.strip("[]") for a in shlex.split(command) if not a.startswith("<")]  # [--opt x]: optional
    args = build_parser().parse_args(argv)
    assert args.func


def test_makefile_has_every_target_the_readme_names():
    targets = set(re.findall(r"^([a-z0-9-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"make ([a-z0-9-]+)", README.read_text()))
    assert named <= targets


def test_compose_describes_the_production_topology():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
            "airflow-triggerer", "airflow-worker", "airflow-init"} <= set(services)
    env = services["airflow-worker"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    assert env["RELEASEGATE_DB_URL"].startswith("postgresql+psycopg2://")
    for name, service in services.items():
        if name.startswith("airflow-") and name != "airflow-init":
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert "password" not in (ROOT / "docker-compose.yml").read_text().lower().replace("_password", "")


@pytest.mark.parametrize("service", ["airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
                                     "airflow-triggerer"])
def test_compose_commands_are_real_airflow_commands(service):
    import subprocess
    import sys

    command = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["command"]
    airflow = Path(sys.executable).parent / "airflow"
    proc = subprocess.run([str(airflow), *command[1:], "--help"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stderr[-1000:]


# --- what docs/policy.md says the gate does, checked against the gate -------------------------------------------

MISSING_FILE = ("does not exist", "is not a folder", "is not a file")


@pytest.mark.parametrize("index", range(len(yaml_blocks(POLICY_DOC))))
def test_every_policy_example_passes_policy_check_but_for_the_services_files(tmp_path, index):
    """Placeholders where the gate fills them in, ports in start and health: only the files are not here."""
    from releasegate.policy.check import check_policy

    target = tmp_path / "gate.yaml"
    target.write_text(yaml_blocks(POLICY_DOC)[index])

    problems = check_policy(load_policy(target), "1.0").problems
    assert [p for p in problems if not any(words in p.message for words in MISSING_FILE)] == []


def doc_table(heading: str) -> list[list[str]]:
    """The body rows of the first table after `heading`, as lists of cells."""
    lines = POLICY_DOC.read_text().split(heading, 1)[1].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return [r for r in rows[1:] if not all(set(c) <= {"-", " "} for c in r)]


def test_the_semgrep_severity_table_is_the_gates():
    from releasegate.stages.semgrep import SEVERITY, UNKNOWN_SEVERITY

    documented = {}
    for levels, severity in doc_table("## Severities\n")[:-1]:
        documented.update({level.strip("` "): severity.split()[0] for level in levels.split(",")})
    assert documented == {level: severity.value for level, severity in SEVERITY.items()}
    assert doc_table("## Severities\n")[-1][1].startswith(UNKNOWN_SEVERITY.value)


def test_the_path_table_names_each_fields_base_as_policy_check_resolves_it(tmp_path):
    """Every path field set to a name that does not exist: policy check names the base the table gives it."""
    from releasegate.policy.check import check_policy

    (tmp_path / "src").mkdir()
    target = tmp_path / "gate.yaml"
    target.write_text(yaml.safe_dump({
        "service": "s", "source": {"path": "src"},
        "environment": {"start": "x --port {port}", "health": {"url": "http://{host}:{port}/"},
                        "dependencies": [{"name": "db", "path": "nope", "start": "x {port}",
                                          "health": {"tcp": "{host}:{port}"}}]},
        "suites": [{"name": "u", "paths": ["nope"]}],
        "load": {"locustfile": "nope.py", "budgets": {"p95_ms": 1}},
        "scans": {"semgrep": {"rules": ["nope.yml"], "paths": ["nope"]},
                  "pip_audit": {"requirements": ["nope.txt"], "osv_data": "nope.jsonl"}},
        "alerts": {"rule_files": ["nope.yml"], "tests": ["nope.yml"], "alertmanager": {"config": "nope.yml"}},
        "chaos": {"experiments": [{"name": "c", "file": "nope.yaml"}]}}))
    bases = {re.sub(r"\[\d+\]", "[]", re.sub(r"\[\d+\]$", "", p.field)): "source" if "source folder" in p.message
             else "policy" for p in check_policy(load_policy(target)).problems}

    table = doc_table("## Paths\n")
    documented = {}
    for source_cell, policy_cell in table:
        for base, cell in (("source", source_cell), ("policy", policy_cell)):
            for name in re.findall(r"`([a-z_.\[\]]+)`", cell):
                documented[name] = base
    checked = {name: base for name, base in documented.items() if name in bases}
    assert checked == bases and len(checked) >= 11


def test_the_documented_cli_stage_order_is_the_runs():
    from releasegate.pipeline import expected_stages
    from releasegate.policy import Policy

    text = " ".join(POLICY_DOC.read_text().split())
    said = text.split("runs them one after another in one process: ", 1)[1].split(";", 1)[0]
    words = {"provision": "provision", "the suites in the policy's order": "pytest[a]", "the load test": "locust",
             "chaos": "chaos", "Semgrep": "semgrep", "pip-audit": "pip-audit", "alerts": "alerts"}
    policy = Policy.model_validate({
        "service": "s", "environment": {"start": "x", "health": {"url": "u"}}, "suites": [{"name": "a"}],
        "load": {"locustfile": "l.py", "budgets": {}}, "chaos": {"experiments": [{"name": "c", "file": "c"}]},
        "scans": {"semgrep": {"rules": ["r"]}, "pip_audit": {"requirements": ["r"], "osv_url": "u"}},
        "alerts": {"rule_files": ["r"], "tests": ["t"]}})
    assert [words[w.strip()] for w in said.split(",")] == [s.name for s in expected_stages(policy)]


def test_the_coverage_advice_is_the_one_that_works():
    """`-p no:cov` breaks under `--cov` addopts (tests/integration/test_suite_causes.py shows both)."""
    text = POLICY_DOC.read_text()
    assert '["--cov-fail-under=0"]' in text
    assert not re.search(r'args: \["-p", "no:cov"\]', text)
