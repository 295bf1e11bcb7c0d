"""The gate installed from its wheel, not the checkout: it migrates its database and runs the demo from any directory.

The wheel is built from what the Dockerfile copies (pyproject.toml, README.md, releasegate/, persistence/) into a
fresh virtualenv outside the repository, with the dependency versions of the development venv as constraints
(uv links them from its cache). Templates, Semgrep rules and migrations must come with it as package data.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from persistence.migrate import head
from tests.support.demo import write_quick_policy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DOCKERFILE_COPIES = ("pyproject.toml", "README.md", "releasegate", "persistence")
PACKAGE_DATA = ("releasegate/templates/report.html.j2", "releasegate/templates/results.md.j2",
                "releasegate/templates/_charts.html.j2", "releasegate/rules/python-security.yml",
                "persistence/migrations/env.py", "persistence/migrations/script.py.mako",
                "releasegate/stages/pytest_plugin/releasegate_nodeids.py")


def _run(argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(a) for a in argv], capture_output=True, text=True, check=False,
                          timeout=kwargs.pop("timeout", 300), **kwargs)
    assert proc.returncode == 0, f"{argv[0]} exited {proc.returncode}: {proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """Built, as the Dockerfile would, from a copy of exactly the files it copies."""
    build = tmp_path_factory.mktemp("wheel-build")
    for name in DOCKERFILE_COPIES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, build / "src" / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            (build / "src").mkdir(exist_ok=True)
            shutil.copy2(source, build / "src" / name)
    _run([BIN / "uv", "build", "--wheel", "--quiet", "-o", build / "dist", build / "src"])
    (found,) = (build / "dist").glob("releasegate-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory) -> Path:
    """A new virtualenv with the wheel and its dependencies (the development venv's versions), nothing else."""
    root = tmp_path_factory.mktemp("wheel-venv")
    pins = _run([BIN / "uv", "pip", "freeze", "--python", sys.executable]).stdout.splitlines()
    constraints = root / "constraints.txt"
    constraints.write_text("\n".join(p for p in pins if p.strip() and not p.startswith("-e ")
                                     and not p.lower().startswith("releasegate")) + "\n")
    _run([sys.executable, "-m", "venv", root / "venv"])
    _run([BIN / "uv", "pip", "install", "--quiet", "--python", root / "venv" / "bin" / "python",
          "-c", constraints, wheel], timeout=600)
    return root / "venv"


def _clean_env(venv: Path, home: Path) -> dict[str, str]:
    """No checkout on any path, no development venv on PATH, no database URL: what an operator's shell has."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith(("RELEASEGATE_", "AIRFLOW"))}
    path = [p for p in env.get("PATH", "/usr/bin:/bin").split(os.pathsep) if p and Path(p) != BIN]
    env.update(PATH=os.pathsep.join([str(venv / "bin"), *path]), RELEASEGATE_HOME=str(home / "releasegate"),
               AIRFLOW_HOME=str(home / "airflow"))
    return env


def _site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def test_the_wheel_carries_templates_rules_and_migrations(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())

    assert [n for n in PACKAGE_DATA if n not in names] == []
    assert {n for n in names if n.startswith("persistence/migrations/versions/")} == {
        f"persistence/migrations/versions/{p.name}" for p in (ROOT / "persistence/migrations/versions").glob("*.py")}


def test_the_new_venv_imports_the_wheel_not_the_checkout(venv, tmp_path):
    probe = ("import json, persistence, releasegate; from releasegate.environment import child_pythonpath; "
             "print(json.dumps([releasegate.__file__, persistence.__file__, child_pythonpath()]))")
    out = _run([venv / "bin" / "python", "-c", probe], cwd=tmp_path, env=_clean_env(venv, tmp_path)).stdout
    releasegate_file, persistence_file, child_env = json.loads(out)

    site = _site_packages(venv)
    assert Path(releasegate_file).is_relative_to(site), releasegate_file
    assert Path(persistence_file).is_relative_to(site), persistence_file
    assert child_env == {}  # installed: child Pythons import the gate without PYTHONPATH


def test_the_installed_gate_migrates_and_passes_the_demo_from_any_directory(venv, tmp_path):
    env = _clean_env(venv, tmp_path)
    gate = venv / "bin" / "releasegate"
    policy = write_quick_policy(tmp_path)

    _run([gate, "db", "upgrade"], cwd=tmp_path, env=env)
    with sqlite3.connect(tmp_path / "releasegate" / "releasegate.db") as db:
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    run = subprocess.run([str(gate), "run", "--policy", str(policy), "--version", "1.0.0", "--json"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=600, check=False)

    assert revision == head()
    assert run.stdout.strip(), f"no JSON on stdout (exit {run.returncode}): {run.stderr[-3000:]}"
    data = json.loads(run.stdout)
    assert (run.returncode, data["decision"], data["reasons"]) == (0, "GO", [])
    evidence = Path(data["evidence_dir"])
    assert evidence.is_relative_to(tmp_path / "releasegate" / "evidence")
    report = Path(data["report"]).read_text(encoding="utf-8")
    assert "<title>GO · inventory@1.0.0 · releasegate</title>" in report  # report.html.j2
    assert (evidence / "results.md").read_text(encoding="utf-8").startswith("# Test results: inventory@1.0.0")
    semgrep = json.loads((evidence / "stages" / "semgrep.json").read_text())
    scanned = {m["name"]: m["value"] for m in semgrep["metrics"]}["files_scanned"]
    assert (semgrep["status"], scanned > 0) == ("passed", True)
    command = (evidence / "semgrep" / "semgrep.log").read_text().splitlines()[0]
    packaged_rules = _site_packages(venv) / "releasegate" / "rules" / "python-security.yml"
    assert command.startswith(f"$ {venv / 'bin' / 'semgrep'} ") and f"--config {packaged_rules} " in command
    assert json.loads((evidence / "semgrep" / "semgrep.json").read_text())["errors"] == []
    chaos = json.loads((evidence / "stages" / "chaos.json").read_text())
    assert chaos["status"] == "passed"  # its providers imported releasegate from the wheel
