"""Hostile policies are refused with file, line, field and fix; what passes `policy check` renders at run time."""

import time
from pathlib import Path

import pytest

from releasegate.cli import main
from releasegate.domain.errors import PolicyError
from releasegate.policy import MAX_POLICY_BYTES, load_policy, render_report_url

HEALTHY = "environment:\n  start: serve --port {port}\n  health: {url: 'http://{host}:{port}/'}\n"


def write(tmp_path: Path, content: str | bytes, name: str = "gate.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


def refusal(tmp_path: Path, content: str | bytes) -> str:
    with pytest.raises(PolicyError) as info:
        load_policy(write(tmp_path, content))
    return str(info.value)


def alias_bomb(levels: int = 9) -> str:
    lines = ["service: shop", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_at_its_first_anchor_within_a_second(tmp_path):
    bomb = alias_bomb()
    assert len(bomb) < 1024

    started = time.perf_counter()
    message = refusal(tmp_path, bomb)

    assert time.perf_counter() - started < 1.0
    assert message.startswith(f"{tmp_path / 'gate.yaml'}:2: anchor &a0: anchors and aliases are not allowed")


@pytest.mark.parametrize(("text", "expected"), [
    ("service: &s shop\n", ":1: anchor &s"),
    ("service: shop\nsuites:\n  - &u {name: unit}\n  - *u\n", ":3: anchor &u"),
    ("service: shop\nx: *nothing\n", ":2: alias *nothing"),
    ("service: shop\nsource: {<<: {path: .}}\n", "tag tag:yaml.org,2002:merge is not allowed"),
])
def test_anchors_aliases_and_merges_are_refused(tmp_path, text, expected):
    message = refusal(tmp_path, text)
    assert expected in message
    assert "write" in message or "remove" in message


def test_recursive_anchor_is_refused_not_a_traceback(tmp_path, capsys):
    path = write(tmp_path, "service: shop\nloop: &loop [*loop]\n")

    assert main(["policy", "check", str(path)]) == 2
    assert "gate.yaml:2: anchor &loop" in capsys.readouterr().err


@pytest.mark.parametrize("nested", ["[" * 5000, "{a: " * 5000, "\n" + "".join(f"{'  ' * i}  k{i}:\n" for i in range(200))])
def test_deep_nesting_is_refused_with_a_line(tmp_path, nested):
    message = refusal(tmp_path, "service: shop\nx: " + nested + "\n")
    assert "nested more than 32 levels deep" in message
    assert "gate.yaml:" in message


def test_a_policy_larger_than_the_cap_is_refused_before_parsing(tmp_path):
    message = refusal(tmp_path, "service: shop\n" + "# padding\n" * (MAX_POLICY_BYTES // 10))
    assert "larger than 1024 KiB" in message


@pytest.mark.parametrize(("content", "line"), [
    (b"service: shop\nsuites: [{name: unit}]\n# caf\xe9\n", 3),
    (b"\xff\xfes\x00e\x00r\x00", 1),                   # UTF-16
])
def test_non_utf8_is_refused_naming_the_line(tmp_path, content, line):
    message = refusal(tmp_path, content)
    assert f"gate.yaml:{line}: not UTF-8" in message and "save the policy as UTF-8" in message


def test_a_utf8_byte_order_mark_is_fine(tmp_path):
    assert load_policy(write(tmp_path, b"\xef\xbb\xbfservice: shop\n")).service == "shop"


def test_duplicate_keys_are_refused_naming_both_lines(tmp_path):
    message = refusal(tmp_path, "service: shop\nsuites: [{name: unit}]\nservice: other\n")
    assert "gate.yaml:3: duplicate key 'service' (first on line 1)" in message


@pytest.mark.parametrize(("text", "expected"), [
    (f"service: shop\n{HEALTHY}  port: true\n", "gate.yaml:5: environment.port: Input should be a valid integer, "
                                               "got True"),
    ("service: shop\nsuites: [{name: unit, retries: '2'}]\n", "suites[0].retries: Input should be a valid integer"),
    ("service: shop\nsuites: [{name: unit, timeout_s: yes}]\n", "suites[0].timeout_s: Input should be a valid number"),
    ("service: shop\nsuites: [{name: unit, exit_codes_ok: [0, false]}]\n", "suites[0].exit_codes_ok[1]"),
    ("service: shop\nsuites: [{name: unit, required: 1}]\n", "suites[0].required: Input should be a valid boolean"),
])
def test_types_are_strict(tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("service: shop\nsuites: [{name: unit, timeout_s: .inf}]\n", "gate.yaml:2: .inf is not a finite number"),
    ("service: shop\nsuites: [{name: unit, timeout_s: -.Inf}]\n", "is not a finite number"),
    ("service: shop\nsuites: [{name: unit, timeout_s: .nan}]\n", "is not a finite number"),
    ("service: shop\nsuites: [{name: unit, timeout_s: 1.0e+999}]\n", "is not a finite number"),
    ("service: shop\nsuites: [{name: unit, timeout_s: 86401}]\n",
     "suites[0].timeout_s: Input should be less than or equal to 86400"),
    (f"service: shop\n{HEALTHY}  health: {{url: x, interval_s: 61}}\n", "duplicate key 'health'"),
    ("service: shop\nwaivers: {max_days: 400}\n", "waivers.max_days: Input should be less than or equal to 365"),
])
def test_durations_are_finite_and_bounded(tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


@pytest.mark.parametrize(("text", "expected"), [
    ("service: shop\nx: !!python/object:os.system {}\n", "tag tag:yaml.org,2002:python/object:os.system"),
    ("service: shop\nx: !!binary aGk=\n", "tag tag:yaml.org,2002:binary is not allowed"),
    ("service: shop\nx: !custom 1\n", "tag !custom is not allowed"),
    ("service: shop\nx: !!set {a, b}\n", "tag tag:yaml.org,2002:set"),
    ('service: shop\nsource: {path: "a\\0b"}\n', "gate.yaml:2: control character in a value"),
    ('service: shop\nsource: {path: "\\e[2J"}\n', "control character"),
    ("service: shop\n1: x\n", "gate.yaml:2: key '1' is read as int, not text — quote it"),
    ("service: shop\non: x\n", "key 'on' is read as bool"),
    ("service: shop\n---\nservice: two\n", "not valid YAML"),
    ("- service\n", "expected a mapping at the top"),
    ("", "expected a mapping at the top"),
    ("service: shop\nsuites: [{name: unit, env: {'A=B': x}}]\n",
     "suites[0].env.A=B: 'A=B' is not an environment variable name"),
])
def test_what_a_policy_never_needs_is_refused(tmp_path, text, expected):
    assert expected in refusal(tmp_path, text)


def test_dates_stay_text(tmp_path):
    policy = load_policy(write(tmp_path, "service: shop\nsuites: [{name: unit, args: [--since, 2026-01-01]}]\n"))
    assert policy.suites[0].args == ["--since", "2026-01-01"]


def test_many_problems_are_capped(tmp_path):
    keys = "".join(f"  unknown{i}: 1\n" for i in range(100))
    message = refusal(tmp_path, f"service: shop\nsource:\n{keys}")
    assert message.splitlines()[0].endswith("100 problem(s) in the policy")
    assert "... and 80 more" in message
    assert len(message.splitlines()) == 22


def test_long_values_are_clipped_in_messages(tmp_path):
    message = refusal(tmp_path, f"service: shop\nsuites: [{{name: unit, retries: '{'9' * 5000}'}}]\n")
    assert len(message) < 400


# --- templates: what passes `policy check` renders at run time ----------------------------------------------------

@pytest.mark.parametrize(("url", "expected"), [
    ("https://gate.example/{service}/{port}/report.html", "unknown placeholder {port} in report_url"),
    ("https://gate.example/{run_id}}/x", "'}'"),
    ("https://gate.example/{version}/a b", "' '"),
    ("https://gate.example/<!channel>", "'<'"),
    ("https://gate.example/x|y", "'|'"),
    ("/reports/{service}/{version}", "is not an http(s) URL"),
    ("javascript:alert(1)//{version}", "is not an http(s) URL"),
])
def test_report_url_templates_that_would_not_render_are_refused_by_policy_check(tmp_path, capsys, url, expected):
    path = write(tmp_path, f"service: shop\nnotify:\n  slack: {{channel: '#r', report_url: '{url}'}}\n")

    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert "gate.yaml:3: notify.slack.report_url:" in err and expected in err
    assert "Traceback" not in err


def test_report_url_values_are_percent_encoded():
    url = render_report_url("https://gate.example/{service}/{version}/{run_id}/report.html?x=1&y=2",
                            service="shop", version="1.0/<!channel>|x y", run_id="rg-1")
    assert url == "https://gate.example/shop/1.0%2F%3C%21channel%3E%7Cx%20y/rg-1/report.html?x=1&y=2"


@pytest.mark.parametrize(("command", "expected"), [
    ("start: \"serve --name 'unbalanced\"", "environment.start: cannot split the command into arguments"),
    ("start: '   '", "environment.start: the command is empty"),
    ("start: []", "environment.start: the command is empty"),
])
def test_commands_that_would_not_split_at_run_time_are_refused(tmp_path, command, expected):
    text = f"service: shop\nenvironment:\n  {command}\n  health: {{url: 'http://{{host}}:{{port}}/'}}\n"
    message = refusal(tmp_path, text)
    assert "gate.yaml:3:" in message and expected in message


def test_suite_and_export_commands_are_checked_too(tmp_path):
    suite = refusal(tmp_path, "service: shop\nsuites: [{name: unit, command: \"pytest -k 'a\"}]\n")
    export = refusal(tmp_path, "service: shop\nscans:\n  pip_audit:\n    requirements: [r.txt]\n"
                               "    osv_url: http://127.0.0.1:1\n    export: [\"uv export '\"]\n")
    assert "suites[0].command: cannot split" in suite
    assert "scans.pip_audit.export[0]: cannot split" in export
