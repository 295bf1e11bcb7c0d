"""`releasegate policy check` on fuzzed and hostile policies: exit 2 with a message or a valid policy, never a
traceback, within a memory bound; a valid policy's templates render at run time with hostile values."""

from __future__ import annotations

import contextlib
import io
import json
import math
import resource
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from releasegate.cli import main
from releasegate.policy import PLACEHOLDERS, fill_command, json_schema, load_policy, render_report_url

SCHEMA = json_schema()
MEMORY_HEADROOM = 1024 * 1024 * 1024      # address space the checks may add to the process: 1 GiB
HOSTILE_TEXT = ["{port}", "{0}", "}", "{", "{version:>999999999}", "{service.__class__}", "'", '"', "<!channel>",
                "&amp;", "a\u200bb", "a\u202eb", "\x00", "\x1b[2J", "x" * 3000, "", " ", "- x", "yes", "~",
                "\U0001f642", "{dep_x_url}", "http://h/{version}", "https://h/{run_id}}", "\ud800", "on"]
HOSTILE_SCALARS = [True, False, 0, -1, 10**30, 1e308, -1e-308, math.inf, -math.inf, math.nan, "12", None, [], {}]
HOSTILE_VERSIONS = ["1.0.0", "1.0/<!channel>|x y", "{run_id}", "' \"", "\u200b", "%2F..%2F", "&lt;"]
outcomes: Counter = Counter()


# --- documents drawn from the published JSON schema, with hostile values mixed into every leaf ------------------

def from_schema(schema: dict) -> st.SearchStrategy:
    if "$ref" in schema:
        return st.deferred(lambda: from_schema(SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]))
    if "anyOf" in schema:
        return st.one_of(*(from_schema(s) for s in schema["anyOf"]))
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.sampled_from(HOSTILE_TEXT)
    kind = schema.get("type")
    if kind == "object":
        return _object(schema)
    if kind == "array":
        items = from_schema(schema.get("items", {"type": "string"}))
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=3)
    valid = {"string": lambda: _text(schema), "integer": lambda: _integer(schema), "number": lambda: _number(schema),
             "boolean": st.booleans, "null": st.none}.get(kind, lambda: st.text(max_size=5))()
    return st.one_of(valid, valid, valid, st.sampled_from(HOSTILE_SCALARS + HOSTILE_TEXT))


def _text(schema: dict) -> st.SearchStrategy:
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True).filter(lambda s: len(s) < 40)
    return st.text(alphabet=st.characters(codec="utf-8"), max_size=20) | st.sampled_from(
        ["{python} -m app --port {port}", "http://{host}:{port}/healthz", "tests/unit", "."])


def _integer(schema: dict) -> st.SearchStrategy:
    return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))


def _number(schema: dict) -> st.SearchStrategy:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    return st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False,
                     exclude_min="exclusiveMinimum" in schema, exclude_max="exclusiveMaximum" in schema)


def _object(schema: dict) -> st.SearchStrategy:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    base = st.fixed_dictionaries({k: from_schema(v) for k, v in properties.items() if k in required},
                                 optional={k: from_schema(v) for k, v in properties.items() if k not in required})
    for pattern, value in schema.get("patternProperties", {}).items():
        base = st.dictionaries(st.from_regex(pattern, fullmatch=True) | st.sampled_from(["A=B", "1X", ""]),
                               from_schema(value), max_size=2)
    if isinstance(schema.get("additionalProperties"), dict):
        base = st.dictionaries(st.text(max_size=10), from_schema(schema["additionalProperties"]), max_size=2)
    unknown = st.dictionaries(st.sampled_from(["retires", "x", "<<", "service"]), st.integers(), max_size=1)
    return st.one_of(base, base, base, st.tuples(base, unknown).map(lambda pair: {**pair[0], **pair[1]}))


def as_text(document: dict, style: str) -> str:
    if style == "json":
        return json.dumps(document, allow_nan=True)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=style == "unicode", default_flow_style=None)


@contextlib.contextmanager
def address_space_limit(headroom: int = MEMORY_HEADROOM) -> Iterator[None]:
    """Cap this process's address space at what it uses now plus ``headroom``: a blow-up is a MemoryError."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    in_use = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    cap = in_use + headroom if hard == resource.RLIM_INFINITY else min(in_use + headroom, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def check(text: str | bytes) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "gate.yaml"
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass"))
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["policy", "check", str(path)])
        if code == 0:
            renders_at_run_time(load_policy(path))
    return code, err.getvalue()


def renders_at_run_time(policy) -> None:
    """What the run does with a valid policy's templates, with hostile run-time values."""
    values = dict.fromkeys(PLACEHOLDERS, HOSTILE_VERSIONS[1])
    commands = [s.command for s in policy.suites]
    if policy.environment:
        commands += [policy.environment.start, *policy.environment.setup]
    for command in commands:
        fill_command(command, values)
    slack = policy.notify.slack
    if slack and slack.report_url:
        for version in HOSTILE_VERSIONS:
            url = render_report_url(slack.report_url, service=policy.service, version=version, run_id="rg-1")
            assert not set(url) & set("<>| \"'"), url


@settings(max_examples=250, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(document=from_schema(SCHEMA), style=st.sampled_from(["yaml", "unicode", "json"]))
def test_fuzzed_policies_from_the_schema_exit_2_or_load(document, style):
    with address_space_limit():
        code, err = check(as_text(document, style))

    assert code in (0, 2)
    if code == 2:
        assert err.startswith("releasegate: policy error: ") and "gate.yaml" in err
        assert "Traceback" not in err
    outcomes[code] += 1


VALID_BASE = {"service": "shop", "suites": [{"name": "unit"}]}


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(report_url=st.sampled_from(HOSTILE_TEXT) | st.text(max_size=40).map(lambda t: "https://gate.example/" + t)
       | st.lists(st.sampled_from(["{service}", "{version}", "{run_id}", "/", "x", "?a=1&b=2", "%20", "#f"]),
                  max_size=6).map(lambda parts: "https://gate.example/" + "".join(parts)),
       command=st.text(max_size=30) | st.sampled_from(["pytest -k 'a", 'x "', "  ", "a\\", "{python} -m pytest"]),
       env=st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=2))
def test_templates_that_pass_policy_check_render_at_run_time(report_url, command, env):
    document = {**VALID_BASE, "suites": [{"name": "unit", "command": command, "env": env}],
                "notify": {"slack": {"channel": "#r", "report_url": report_url}}}
    with address_space_limit():
        code, err = check(as_text(document, "unicode"))

    assert code in (0, 2), err
    assert "Traceback" not in err
    outcomes[f"template-{code}"] += 1


def test_the_fuzzing_reached_both_outcomes():
    """Sanity of the generators above (run after them): some documents load, some are refused."""
    if not outcomes:
        pytest.skip("run with the fuzz tests above")
    assert outcomes[0] > 0 and outcomes[2] > 0, outcomes
    assert outcomes["template-0"] > 0 and outcomes["template-2"] > 0, outcomes


# --- a corpus of hostile files, checked in a child process with a hard address-space limit -----------------------

def alias_bomb(levels: int = 9) -> str:
    lines = ["service: shop", 'a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


HEALTH = "environment: {start: serve, health: {url: 'http://{host}:{port}/'}}\n"
SLACK = "notify: {slack: {channel: '#r', report_url: '%s'}}\n"
CORPUS: dict[str, bytes | str] = {
    "alias-bomb": alias_bomb(),
    "recursive-anchor": "service: shop\nloop: &loop [*loop]\n",
    "self-merge": "service: shop\nsource: &s {path: ., <<: *s}\n",
    "deep-flow": "service: shop\nx: " + "[" * 100_000 + "\n",
    "deep-block": "service: shop\nx:\n" + "".join(f"{'  ' * (i + 1)}k{i}:\n" for i in range(500)),
    "latin-1": "service: café\n".encode("latin-1"),
    "utf-16": "service: shop\n".encode("utf-16"),
    "duplicate-key": "service: shop\nservice: other\n",
    "port-true": "service: shop\n" + HEALTH.replace("serve,", "serve, port: true,"),
    "timeout-inf": "service: shop\nsuites: [{name: unit, timeout_s: .inf}]\n",
    "timeout-nan": "service: shop\nsuites: [{name: unit, timeout_s: .NaN}]\n",
    "timeout-huge": "service: shop\nsuites: [{name: unit, timeout_s: 1e+300}]\n",
    "report-url-port": "service: shop\n" + SLACK % "https://g/{service}/{port}",
    "report-url-format-spec": "service: shop\n" + SLACK % "https://g/{version:>999999999}",
    "report-url-brace": "service: shop\n" + SLACK % "https://g/{version}}",
    "report-url-attribute": "service: shop\n" + SLACK % "https://g/{service.__class__.__mro__}",
    "python-object": "service: !!python/object/apply:os.system ['true']\n",
    "raw-nul": b"service: sh\x00op\n",
    "oversize": "service: shop\n" + "#" * (2 * 1024 * 1024) + "\n",
    "many-values": "service: shop\nx: [" + "1," * 200_000 + "1]\n",
    "huge-int": "service: shop\nsuites: [{name: unit, retries: " + "9" * 100_000 + "}]\n",
    "surrogate": 'service: shop\nsource: {path: "\\udc80"}\n',
    "complex-key": "service: shop\n? [a, b]\n: c\n",
    "tab-indent": "service: shop\nsuites:\n\t- name: unit\n",
    "two-documents": "service: shop\n---\nservice: other\n",
    "empty": "",
    "top-level-list": "- service: shop\n",
    "unbalanced-command": "service: shop\nsuites: [{name: unit, command: \"pytest -k 'x\"}]\n",
    "env-name": "service: shop\nsuites: [{name: unit, env: {'A=B': x}}]\n",
    "bool-key": "service: shop\nyes: 1\n",
    "binary": "service: !!binary c2hvcA==\n",
}
DRIVER = r"""
import contextlib, io, json, sys, time, traceback
from releasegate.cli import main
import releasegate.pipeline  # what `policy check` imports on first use: time the checks, not the imports
results = {}
for path in sys.argv[1:]:
    err = io.StringIO()
    started = time.perf_counter()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(["policy", "check", path])
    except BaseException:
        code, err = None, io.StringIO(traceback.format_exc())
    results[path] = {"code": code, "stderr": err.getvalue(), "seconds": time.perf_counter() - started}
print(json.dumps(results))
"""
CHILD_ADDRESS_SPACE = 1024 * 1024 * 1024   # the whole checking process: 1 GiB (an alias bomb grew past 11 GB)


def _limit_child() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (CHILD_ADDRESS_SPACE, CHILD_ADDRESS_SPACE))


@pytest.fixture(scope="module")
def corpus_results(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("hostile")
    paths = {}
    for name, content in CORPUS.items():
        paths[name] = folder / f"{name}.yaml"
        data = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
        paths[name].write_bytes(data)
    proc = subprocess.run([sys.executable, "-c", DRIVER, *map(str, paths.values())], capture_output=True, text=True,
                          timeout=120, preexec_fn=_limit_child, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    return {name: results[str(path)] for name, path in paths.items()}


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_hostile_policy_exits_2_with_a_message(corpus_results, name):
    result = corpus_results[name]

    assert result["code"] == 2, result["stderr"]
    assert result["stderr"].startswith("releasegate: policy error: ")
    assert f"{name}.yaml" in result["stderr"] and "Traceback" not in result["stderr"]
    assert " — " in result["stderr"], "every refusal says what to do"
    assert result["seconds"] < 5


def test_alias_bomb_is_refused_in_under_a_second(corpus_results):
    assert len(CORPUS["alias-bomb"]) < 1024
    assert corpus_results["alias-bomb"]["seconds"] < 1.0
    assert "anchors and aliases are not allowed" in corpus_results["alias-bomb"]["stderr"]
