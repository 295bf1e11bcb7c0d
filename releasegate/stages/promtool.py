"""promtool on the alerts stage's rule files and rule tests: running it and reading its output (pure parsers).

promtool (2.42) prints "Checking F" / "Unit Testing: F" on stdout and, on failure, "FAILED:" and
the details on stderr; the parsers read both as one text (stdout, a newline, stderr). A rule file
that does not load and a failing rule test are findings (the release would ship broken alerting);
output without SUCCESS / FAILED is a StageError, and so is an exit status that contradicts the output
(`agree`, which amtool's answers go through too).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint, normalise_code, normalise_path
from releasegate.domain.models import Finding, Severity
from releasegate.policy import Alerts
from releasegate.stages.base import ToolRun, run_tool

FINDING_KIND = "alert"
SEVERITY = Severity.high  # rules that never load, or alerts that fire wrongly, break on-call in production
EVIDENCE_CHARS = 600
# Exit statuses when promtool checked: check/test rules 0 (SUCCESS) or 1 (FAILED). A signal, a timeout or any
# other status is an error; so is a check or test whose output contradicts its status (SUCCESS with 1, FAILED with 0).
PROMTOOL_OK = (0, 1)


@dataclass(frozen=True)
class Problem:
    """One thing promtool reported wrong: a rule that does not load or a failing test."""

    file: str         # the rule file or the test file, relative to the source
    key: str          # what identifies it across runs: group/alertname, test group, expr
    title: str
    detail: str       # promtool's own words (exp/got), for the evidence excerpt
    rule: str         # promtool-check, promtool-test, promtool-test-load


_CHECK_LINE = re.compile(r'^(?P<file>[^:]+): (?:\d+:\d+: )?(?:group "(?P<group>[^"]*)", rule \d+, "(?P<name>[^"]*)": )?'
                         r"(?P<message>.+)$")


def parse_check(text: str, file: str) -> list[Problem]:
    """`promtool check rules FILE` output as problems; [] on SUCCESS; StageError if neither is recognisable."""
    if _has_marker(text, "SUCCESS"):
        return []
    if not _has_marker(text, "FAILED:"):
        raise StageError(f"promtool check rules {file}: unrecognised output: {_tail(text)}")
    lines = [line for line in _after_marker(text, "FAILED:") if line.strip()]
    problems = list({p.key: p for p in (_check_problem(line, file) for line in lines)}.values())
    return problems or [Problem(file, "does-not-load", f"{file}: rules do not load", "", "promtool-check")]


def _check_problem(line: str, file: str) -> Problem:
    match = _CHECK_LINE.match(line)
    group, name = (match["group"], match["name"]) if match and match["group"] is not None else (None, None)
    message = match["message"] if match else line
    key = f"{group}/{name}" if group is not None else _without_numbers(message)
    where = f'group "{group}", rule "{name}"' if group is not None else "file"
    return Problem(file, key, f"{file}: {where} does not load: {message}"[:300], line, "promtool-check")


def _without_numbers(message: str) -> str:
    """Line and column numbers shift with unrelated edits; they are not part of what identifies a problem."""
    return re.sub(r"\bline \d+\b|\d+:\d+", "#", message)


@dataclass(frozen=True)
class TestOutcome:
    problems: list[Problem]
    passed: bool


def parse_test(text: str, file: str) -> TestOutcome:
    """`promtool test rules FILE` output: SUCCESS, or each failing alert/expr check, or why it could not load."""
    if _has_marker(text, "SUCCESS") and not _has_marker(text, "FAILED:"):
        return TestOutcome([], True)
    if not _has_marker(text, "FAILED:"):
        raise StageError(f"promtool test rules {file}: unrecognised output: {_tail(text)}")
    blocks = _blocks(_after_marker(text, "FAILED:", keep_blank=True))
    failures = [_test_problem(block, file) for block in blocks]
    return TestOutcome(failures or [_load_problem(["(no detail)"], file)], False)


def _blocks(lines: list[str]) -> list[list[str]]:
    """One block per failing check (it starts at its `name:` line, else at `alertname:`/`expr:`);
    unindented lines (the rules or the test file did not load) are one block together."""
    blocks: list[list[str]] = []
    loads: list[str] = []
    previous = ""
    for line in (ln for ln in lines if ln.strip()):
        if not line.startswith(" "):
            loads.append(line)
        elif _starts_block(line, previous) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
        previous = line
    return blocks + ([loads] if loads else [])


_HEADER = re.compile(r"^ {4}(name|alertname|expr): ")


def _starts_block(line: str, previous: str) -> bool:
    header = _HEADER.match(line)
    return header is not None and (header[1] == "name" or not previous.lstrip().startswith("name: "))


_NAME = re.compile(r"^\s*name: (?P<name>.*),\s*$")
_ALERT = re.compile(r"^\s*alertname: (?P<alert>[^,]*), time: (?P<time>[^,]*),")
_EXPR = re.compile(r'^\s*expr: (?P<expr>".*"), time: (?P<time>[^,]*),')


def _test_problem(block: list[str], file: str) -> Problem:
    if not block[0].startswith(" "):
        return _load_problem(block, file)
    fields = _fields(block)
    detail = "\n".join(line.rstrip() for line in block)
    group = fields.get("name", "")
    if "alert" in fields:
        key = f"{group}/{fields['alert']}"
        title = f"{file}: test {group!r}: alert {fields['alert']} at {fields['time']} not as expected"
    else:
        expr = fields.get("expr", normalise_code(block[0]))
        key = f"{group}/{expr}" if group else expr
        title = f"{file}: test{f' {group!r}' if group else ''}: {expr} at {fields.get('time', '?')} not as expected"
    return Problem(file, key, title, _dedent(detail), "promtool-test")


def _fields(block: list[str]) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in block[:3]:
        for pattern in (_NAME, _ALERT, _EXPR):
            match = pattern.match(line)
            if match:
                fields.update(match.groupdict())
    return fields


def _load_problem(lines: list[str], file: str) -> Problem:
    detail = "\n".join(dict.fromkeys(lines))
    return Problem(file, "could-not-load", f"{file}: rule tests could not run: {lines[0][:200]}", detail,
                   "promtool-test-load")


def _has_marker(text: str, marker: str) -> bool:
    return any(line.strip().startswith(marker) for line in text.splitlines())


def _after_marker(text: str, marker: str, keep_blank: bool = False) -> list[str]:
    lines = text.splitlines()
    out: list[str] = []
    for i, line in enumerate(lines):
        if line.strip().startswith(marker):
            out += [ln for ln in lines[i + 1:] if keep_blank or ln.strip()]
            out.append("")
    return out


def _dedent(text: str) -> str:
    lines = text.splitlines()
    indent = min((len(ln) - len(ln.lstrip()) for ln in lines if ln.strip()), default=0)
    return "\n".join(ln[indent:] for ln in lines)


def _tail(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1][:200] if lines else "no output") + " — is promtool working? run it by hand on the file"


def finding(problem: Problem) -> Finding:
    path = normalise_path(problem.file)
    detail = problem.detail if len(problem.detail) <= EVIDENCE_CHARS else problem.detail[: EVIDENCE_CHARS - 1] + "…"
    return Finding(kind=FINDING_KIND, rule=problem.rule, severity=SEVERITY, title=problem.title, location=path,
                   evidence=detail, fingerprint=fingerprint(FINDING_KIND, path, problem.key), blocking=True,
                   data={"file": path, "key": problem.key})


def count_rules(text: str) -> tuple[int, int]:
    """(groups, rules) in a Prometheus rule file's YAML; (0, 0) when it does not parse."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return 0, 0
    groups = [g for g in (doc or {}).get("groups", []) or [] if isinstance(g, dict)] if isinstance(doc, dict) else []
    return len(groups), sum(len(g.get("rules") or []) for g in groups)


def count_tests(text: str) -> int:
    """Test groups in a promtool rule-test file; 0 when it does not parse."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return 0
    return len(doc.get("tests") or []) if isinstance(doc, dict) else 0


def run_promtool(binary: str, args: list[str], spec: Alerts, source: Path, out_dir: Path, name: str) -> ToolRun:
    return run_tool([binary, *args], cwd=source, timeout_s=spec.timeout_s, log_to=out_dir / f"promtool-{name}.log",
                    ok=PROMTOOL_OK)


def tool_text(tool: ToolRun) -> str:
    return f"{tool.stdout}\n{tool.stderr}"


def read_check(tool: ToolRun, file: str) -> list[Problem]:
    """The problems a `promtool check rules` run reported, believed only when its exit status agrees."""
    problems = parse_check(tool_text(tool), file)
    agree(tool, not problems, file)
    return problems


def read_test(tool: ToolRun, file: str) -> TestOutcome:
    """What a `promtool test rules` run reported, believed only when its exit status agrees."""
    outcome = parse_test(tool_text(tool), file)
    agree(tool, outcome.passed, file)
    return outcome


def agree(tool: ToolRun, passed: bool, file: str) -> None:
    """A check's exit status must say what its output says (0: SUCCESS, 1: FAILED), or neither is believed."""
    if tool.returncode != (0 if passed else 1):
        raise StageError(f"{tool.ending()} but printed {'SUCCESS' if passed else 'FAILED'} for {file}: its exit "
                         f"status and its output disagree, so neither is believed — see {tool.log}")
