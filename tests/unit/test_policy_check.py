"""`releasegate policy check` checks what can be checked without running: the files and folders the policy names
(each against its own base), placeholders where the gate fills them in, ports; `--json` prints one object always."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from releasegate.cli import main
from releasegate.policy import load_policy
from releasegate.policy.check import check_policy

SERVICE_FILES = ("tests/unit/conftest.py", "tests/unit/test_app.py", "locustfile.py", "requirements.txt", "app/__init__.py",
                 "ops/rules.yml", "ops/rules_test.yml", "ops/alertmanager.yml")
GATE_FILES = ("semgrep/custom.yml", "advisories.osv.jsonl", "chaos/db-down.yaml", "fakes/db/serve.py")


def full_policy() -> dict:
    """A policy naming one of every kind of path, each relative to its own base."""
    return {
        "service": "orders",
        "source": {"path": "releases/{version}"},
        "environment": {
            "start": "{python} -m app --port {port}",
            "health": {"url": "http://{host}:{port}/health"},
            "env": {"DB_URL": "{dep_db_url}"},
            "dependencies": [{"name": "db", "path": "fakes/db", "start": "{python} serve.py --port {port}",
                              "health": {"tcp": "{host}:{port}"}}]},
        "suites": [{"name": "unit", "paths": ["tests/unit", "tests/unit/test_app.py::test_one"],
                    "args": ["--base-url", "{base_url}"]}],
        "load": {"locustfile": "locustfile.py", "budgets": {"p95_ms": 300}},
        "scans": {"semgrep": {"rules": ["builtin:python-security", "semgrep/custom.yml"], "paths": ["app"]},
                  "pip_audit": {"requirements": ["requirements.txt"], "osv_data": "advisories.osv.jsonl"}},
        "alerts": {"rule_files": ["ops/rules.yml"], "tests": ["ops/rules_test.yml"],
                   "alertmanager": {"config": "ops/alertmanager.yml"}},
        "chaos": {"experiments": [{"name": "db-down", "file": "chaos/db-down.yaml"}]},
    }


def project(tmp_path: Path, policy: dict, *, without: tuple[str, ...] = ()) -> Path:
    release = tmp_path / "releases" / "1.0"
    for name in SERVICE_FILES:
        if name not in without:
            (release / name).parent.mkdir(parents=True, exist_ok=True)
            (release / name).write_text("# fixture\n")
    for name in GATE_FILES:
        if name not in without:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text("# fixture\n")
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


def problems(path: Path, version: str | None = "1.0") -> dict[str, str]:
    return {p.field: p.message for p in check_policy(load_policy(path), version).problems}


def check_json(path: Path, *extra: str, capsys) -> tuple[int, dict]:
    code = main(["policy", "check", str(path), "--json", *extra])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_a_policy_whose_files_all_exist_passes(tmp_path, capsys):
    path = project(tmp_path, full_policy())

    code, answer = check_json(path, "--version", "1.0", capsys=capsys)

    assert code == 0 and answer["valid"] is True and answer["problems"] == [], answer
    assert "decision" not in answer and answer["service"] == "orders"
    assert len(answer["checked"]) == 13


@pytest.mark.parametrize(("missing", "field", "base"), [
    ("tests/unit/test_app.py", "suites[0].paths[1]", "the service's source folder"),
    ("locustfile.py", "load.locustfile", "the service's source folder"),
    ("requirements.txt", "scans.pip_audit.requirements[0]", "the service's source folder"),
    ("app/__init__.py", "scans.semgrep.paths[0]", "the service's source folder"),
    ("ops/rules.yml", "alerts.rule_files[0]", "the service's source folder"),
    ("ops/rules_test.yml", "alerts.tests[0]", "the service's source folder"),
    ("ops/alertmanager.yml", "alerts.alertmanager.config", "the service's source folder"),
    ("semgrep/custom.yml", "scans.semgrep.rules[1]", "the policy file's folder"),
    ("advisories.osv.jsonl", "scans.pip_audit.osv_data", "the policy file's folder"),
    ("chaos/db-down.yaml", "chaos.experiments[0].file", "the policy file's folder"),
    ("fakes/db/serve.py", "environment.dependencies[0].path", "the policy file's folder"),
])
def test_each_missing_path_is_named_with_its_base(tmp_path, missing, field, base):
    policy = full_policy()
    if missing == "fakes/db/serve.py":
        policy["environment"]["dependencies"][0]["path"] = "fakes/nowhere"
    path = project(tmp_path, policy, without=(missing,))

    found = problems(path)

    assert list(found) == [field], found
    assert "does not exist" in found[field] and f"this path is relative to {base}" in found[field]


def test_missing_files_fail_the_check_with_file_line_and_field(tmp_path, capsys):
    policy = full_policy()
    policy["suites"][0]["paths"] = ["tests/does_not_exist"]
    path = project(tmp_path, policy, without=("locustfile.py",))

    assert main(["policy", "check", str(path), "--version", "1.0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("releasegate: policy error: ")
    lines = path.read_text().splitlines()
    suite_line = 1 + next(i for i, ln in enumerate(lines) if "tests/does_not_exist" in ln)
    locust_line = 1 + next(i for i, ln in enumerate(lines) if "locustfile: locustfile.py" in ln)
    assert f"{path}:{suite_line}: suites[0].paths[0]: 'tests/does_not_exist' does not exist" in err
    assert f"{path}:{locust_line}: load.locustfile: 'locustfile.py' does not exist" in err


def test_a_versioned_source_is_checked_for_the_version_given(tmp_path, capsys):
    path = project(tmp_path, full_policy())

    report = check_policy(load_policy(path))
    assert report.problems == [] and "pass --version" in report.notes[0]
    assert problems(path, "2.0") == {"source.path": f"{tmp_path / 'releases' / '2.0'} is not a folder for version "
                                                    "2.0 — fix the path (relative to the policy)"}


def test_an_unknown_builtin_rule_set_is_named(tmp_path):
    policy = full_policy()
    policy["scans"]["semgrep"]["rules"][0] = "builtin:python-securty"

    assert problems(project(tmp_path, policy)) == {
        "scans.semgrep.rules[0]": "'builtin:python-securty' is not a bundled rule set — use one of "
                                  "builtin:python-security"}


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda p: p["load"].update(locustfile="load/{version}.py"), "load.locustfile",
     "{version} is not filled in: the gate reads this value as written"),
    (lambda p: p["suites"][0].update(env={"DB": "{dep_db_url}"}), "suites[0].env.DB",
     "{dep_db_url} is not filled in: dependencies are filled in only in environment.setup, start, env, health and broker.url"),
    (lambda p: p["scans"]["pip_audit"].update(export=["uv export -o {base_url}.txt"]), "scans.pip_audit.export[0]",
     "{base_url} is not filled in: no port is known here"),
    (lambda p: p["source"].update(path="releases/{service}"), "source.path",
     "{service} is not filled in: here the gate fills in {version} only"),
])
def test_placeholders_are_known_where_they_are_written(tmp_path, change, field, words):
    policy = full_policy()
    change(policy)

    found = problems(project(tmp_path, policy), version=None)

    assert field in found and found[field].startswith(words), found


def test_a_port_in_a_suite_needs_an_environment(tmp_path):
    path = tmp_path / "gate.yaml"
    path.write_text("service: s\nsuites:\n  - {name: api, args: ['--url', '{base_url}']}\n")

    assert problems(path) == {"suites[0].args[1]": "{base_url} is not filled in: no port is known here: the policy "
                                                   "has no environment — here the gate fills in {evidence} {host} "
                                                   "{python} {run_id} {service} {version} {workdir}"}


def test_the_health_url_and_start_must_use_the_port(tmp_path):
    policy = full_policy()
    policy["environment"]["start"] = "{python} -m app"
    policy["environment"]["health"]["url"] = "http://127.0.0.1:8000/health"
    policy["environment"]["dependencies"][0]["health"] = {"tcp": "127.0.0.1:5432"}

    found = problems(project(tmp_path, policy))

    assert found["environment.start"].startswith("neither start nor environment.env uses {port}")
    assert found["environment.health.url"] == ("'http://127.0.0.1:8000/health' does not ask the service's port — "
                                               "write e.g. 'http://{host}:{port}/healthz'")
    assert found["environment.dependencies[0].health.tcp"].startswith("'127.0.0.1:5432' does not ask the dependency")


def test_a_fixed_port_may_be_written_out(tmp_path):
    policy = full_policy()
    policy["environment"].update(port=8000, start="{python} -m app", health={"url": "http://127.0.0.1:8000/health"})

    assert problems(project(tmp_path, policy)) == {}


def test_a_port_given_through_env_counts(tmp_path):
    policy = full_policy()
    policy["environment"].update(start="{python} -m app", env={"PORT": "{port}"})

    assert problems(project(tmp_path, policy)) == {}


def test_the_interpreter_must_exist(tmp_path):
    policy = full_policy()
    policy["environment"]["python"] = str(tmp_path / "venv" / "bin" / "python")

    assert problems(project(tmp_path, policy))["environment.python"].startswith(f"{policy['environment']['python']!r} "
                                                                                 "is not an executable interpreter")
    policy["environment"]["python"] = sys.executable
    assert problems(project(tmp_path, policy)) == {}


def test_json_on_a_policy_that_does_not_load_is_one_object(tmp_path, capsys):
    path = tmp_path / "gate.yaml"
    path.write_text("service: shop\nsuites: [{name: unit, retires: 1}]\n")

    code, answer = check_json(path, capsys=capsys)

    assert code == 2
    assert answer["decision"] is None and answer["valid"] is False
    assert answer["error"] == f"{path}:2: suites[0].retires: unknown key — did you mean 'retries'?"


def test_json_on_missing_files_is_one_object_with_every_problem(tmp_path, capsys):
    path = project(tmp_path, full_policy(), without=("locustfile.py", "requirements.txt"))

    code, answer = check_json(path, "--version", "1.0", capsys=capsys)

    assert code == 2 and answer["decision"] is None and answer["valid"] is False
    assert [p["field"] for p in answer["problems"]] == ["load.locustfile", "scans.pip_audit.requirements[0]"]
    assert answer["error"].count("\n") == 1 and "locustfile.py" in answer["error"]


def test_json_on_a_missing_policy_file_is_one_object(tmp_path, capsys):
    code, answer = check_json(tmp_path / "nope.yaml", capsys=capsys)

    assert code == 2 and answer["decision"] is None and "policy file not found" in answer["error"]


def test_the_bundled_demo_passes_for_each_release():
    demo = Path(__file__).resolve().parents[2] / "include" / "demo" / "gate.yaml"
    versions = sorted(p.name for p in (demo.parent / "releases").iterdir() if p.is_dir())

    assert versions
    for version in versions:
        assert check_policy(load_policy(demo), version).problems == [], version


def test_exported_requirements_are_not_expected_before_the_run(tmp_path):
    policy = full_policy()
    policy["scans"]["pip_audit"]["export"] = ["uv export -o {workdir}/requirements.lock.txt"]
    policy["scans"]["pip_audit"]["requirements"] = ["requirements.lock.txt"]

    report = check_policy(load_policy(project(tmp_path, policy)), "1.0")

    assert report.problems == [] and any("export commands write them" in n for n in report.notes)


def test_an_executable_check_is_skipped_for_templated_interpreters(tmp_path):
    policy = full_policy()
    policy["environment"]["python"] = "{workdir}/.venv/bin/python"

    found = problems(project(tmp_path, policy))

    assert found == {"environment.python": "{workdir} is not filled in: the gate reads this value as written (no "
                                           "placeholder is filled in here)"}
    assert os.sep in policy["environment"]["python"]
