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
    found = re.findall(r"releasegate ((?:run|trigger|policy|db|runs|waive|waivers|audit|defects|notify)\b[^`\n;#]*)", text)
    return sorted({c.strip() for c in found})


@pytest.mark.parametrize("command", documented_commands())
def test_documented_releasegate_commands_parse(command):
    import shlex

    argv = [a.strip("[]") for a in shlex.split(command) if not a.startswith("<")]  # [--opt x]: optional
    args = build_parser().parse_args(argv)
    assert args.func


def test_makefile_has_every_target_the_readme_names():
    targets = set(re.findall(r"^([a-z-]+):", (ROOT / "Makefile").read_text(), flags=re.M))
    named = set(re.findall(r"make ([a-z-]+)", README.read_text()))
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
