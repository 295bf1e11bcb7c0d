"""A stage's task log for an operator: after its one summary line, folded sections (`::group::` / `::endgroup::`,
which the Airflow UI shows collapsed) with the failing tests and the tail of each tool's own output, so the cause
is one click away without opening the evidence folder. Every line goes through the gate's redacting logger."""

from __future__ import annotations

import logging
from collections import deque
from pathlib import Path

from releasegate.domain.models import StageResult

TAIL_LINES = 40
FAILED_OUTCOMES = ("failed", "error")
TOOL_OUTPUT = (".log", ".out", ".err", ".stderr.txt", ".stdout.txt")


def log_groups(result: StageResult, tail_lines: int = TAIL_LINES) -> list[tuple[str, list[str]]]:
    """(title, lines) for each section: the failing tests (with their message), then each tool output's tail."""
    groups = []
    failing = [c for c in result.test_cases if c.outcome in FAILED_OUTCOMES]
    if failing:
        groups.append((f"{result.stage}: {len(failing)} failing test(s)",
                       [line for c in failing for line in _case_lines(c.node_id, c.outcome, c.message)]))
    for artifact in result.artifacts:
        if artifact.name.endswith(TOOL_OUTPUT):
            groups.append((f"{result.stage}: last {tail_lines} lines of {artifact.name}",
                           _tail(Path(artifact.path), tail_lines)))
    return groups


def emit(groups: list[tuple[str, list[str]]], log: logging.Logger) -> None:
    for title, lines in groups:
        log.info("::group::%s", title)
        for line in lines:
            log.info("%s", line)
        log.info("::endgroup::")


def _case_lines(node_id: str, outcome: str, message: str) -> list[str]:
    first = [f"{outcome.upper()} {node_id}"]
    return first + [f"    {line}" for line in message.strip().splitlines()[:8]]


def _tail(path: Path, count: int) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as text:
            return [line.rstrip("\n") for line in deque(text, maxlen=count)] or ["(empty)"]
    except OSError as exc:
        return [f"({path} cannot be read on this worker: {exc.strerror or exc})"]
