"""The policy model: a valid gate.yaml loads; every mistake names the file, the line, the field and the fix."""

import json
import textwrap
from pathlib import Path

import pytest

from releasegate.domain.errors import PolicyError
from releasegate.policy import fill_command, json_schema, load_policy

DEMO = Path(__file__).resolve().parents[2] / "include" / "demo" / "gate.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gate.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, text))
    return str(info.value)


def test_demo_policy_loads_with_its_stages():
    policy = load_policy(DEMO)
    assert policy.service == "inventory"
    assert [s.name for s in policy.suites] == ["unit", "integration", "contract"]
    assert policy.source_dir("1.1.0").name == "1.1.0"
    assert policy.digest.startswith("sha256:")


def test_unknown_key_suggests_the_right_one(tmp_path):
    message = error_of(tmp_path, """\
        service: shop
        suites:
          - name: unit
            retires: 2
        """)
    assert "gate.yaml:4" in message
    assert "suites[0].retires: unknown key" in message
    assert "did you mean 'retries'?" in message


def test_wrong_type_names_field_value_and_fix(tmp_path):
    message = error_of(tmp_path, """\
        service: shop
        environment:
          start: "run"
          health: {url: "http://{host}:{port}/"}
        load:
          locustfile: locustfile.py
          budgets: {p95_ms: fast}
        """)
    assert "load.budgets.p95_ms" in message
    assert "'fast'" in message
    assert "write a number, e.g. 300" in message


def test_literal_choices_are_listed(tmp_path):
    message = error_of(tmp_path, """\
        service: shop
        suites: [{name: unit, kind: unitt}]
        """)
    assert "suites[0].kind: 'unitt' is not allowed — use one of" in message
    assert "'integration'" in message


def test_load_without_environment_is_refused(tmp_path):
    message = error_of(tmp_path, """\
        service: shop
        load: {locustfile: l.py, budgets: {p95_ms: 100}}
        """)
    assert "add an 'environment' section" in message


def test_unknown_placeholder_is_refused(tmp_path):
    message = error_of(tmp_path, """\
        service: shop
        environment:
          start: "serve --port {prot}"
          health: {url: "http://{host}:{port}/"}
        """)
    assert "environment.start: unknown placeholder {prot}" in message


def test_pip_audit_needs_exactly_one_advisory_source(tmp_path):
    message = error_of(tmp_path, """\
        service: shop
        scans: {pip_audit: {requirements: [requirements.txt]}}
        """)
    assert "set exactly one of osv_url" in message


def test_yaml_syntax_error_points_at_the_line(tmp_path):
    message = error_of(tmp_path, "service: shop\nsuites:\n  - name: [unit\n")
    assert "not valid YAML" in message
    assert "gate.yaml:" in message


def test_missing_file_says_what_to_pass(tmp_path):
    with pytest.raises(PolicyError, match="policy file not found"):
        load_policy(tmp_path / "nope.yaml")


def test_duplicate_suite_names_are_refused(tmp_path):
    message = error_of(tmp_path, "service: shop\nsuites: [{name: unit}, {name: unit}]\n")
    assert "repeated: unit" in message


def test_commands_fill_placeholders_and_keep_other_braces():
    argv = fill_command("{python} -m app --port {port} --json '{x}'", {"python": "/py", "port": "8080"})
    assert argv == ["/py", "-m", "app", "--port", "8080", "--json", "{x}"]


def test_published_schema_matches_the_committed_file():
    committed = Path(__file__).resolve().parents[2] / "docs" / "gate.schema.json"
    assert json.loads(committed.read_text()) == json_schema()
