"""The `suites` section: the pytest suites a version must pass."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from releasegate.domain.models import Severity
from releasegate.policy.spec import MAX_TIMEOUT_S, Command, Env, _Spec


class Suite(_Spec):
    """One pytest suite; its result is read from JUnit XML, never from the exit code alone."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Short id, e.g. unit.")
    kind: Literal["unit", "integration", "contract", "e2e", "smoke", "other"] = "unit"
    command: Command = Field(
        default_factory=lambda: ["{python}", "-m", "pytest"],
        description="Test command (split into arguments, not run by a shell); the gate adds --junitxml.")
    paths: list[str] = Field(default_factory=list,
                             description="Test files or folders, relative to the source, e.g. ['tests.py'].")
    args: list[str] = Field(default_factory=list,
                            description="Extra arguments, e.g. ['--cov-fail-under=0', '-W', 'default'].")
    env: Env = Field(default_factory=dict)
    junit: str | None = Field(
        None, description="Where the command writes JUnit XML itself (non-pytest runners), relative to the source; "
                          "default: the gate asks pytest.")
    needs_service: bool = Field(False, description="Start the service first; the suite gets RELEASEGATE_BASE_URL.")
    required: bool = True
    retries: int = Field(0, ge=0, le=5, description="Reruns of failing tests only; a pass on rerun is flaky.")
    flaky_blocks: bool = Field(False, description="Whether a flaky test blocks the release.")
    min_tests: int = Field(1, ge=0, description="Fewer collected tests than this is missing evidence.")
    timeout_s: float = Field(900, gt=0, le=MAX_TIMEOUT_S)
    exit_codes_ok: list[int] = Field(
        default_factory=lambda: [0, 1],
        description="Exit statuses that mean the tests ran (1: some failed). Any other (pytest's 2, 3, 4), a signal "
                    "or a timeout means the suite did not run: INCONCLUSIVE, with the tool's own error line.")
    severity: Severity = Field(Severity.high, description="Severity of a failing test in this suite.")
