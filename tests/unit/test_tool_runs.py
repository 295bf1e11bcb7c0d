"""How a tool ended, read from its ToolRun: signals, timeouts, exit statuses, and the words an operator gets."""

import signal
from pathlib import Path

import pytest

from releasegate.domain.errors import StageError
from releasegate.stages.base import ToolRun, failure, killed_by, last_error_line, require_ran, tool_name


def ran(returncode: int, stdout: str = "", stderr: str = "", *, timed_out: bool = False, seconds: float = 12.34,
        command: tuple[str, ...] = ("/usr/bin/semgrep", "scan")) -> ToolRun:
    return ToolRun(list(command), returncode, stdout, stderr, seconds, timed_out=timed_out, timeout_s=0.5,
                   log=None if timed_out else Path("/e/semgrep/semgrep.log"))


@pytest.mark.parametrize(("returncode", "expected"), [
    (-9, signal.SIGKILL), (-15, signal.SIGTERM), (137, signal.SIGKILL), (143, signal.SIGTERM), (130, signal.SIGINT),
    (0, None), (1, None), (2, None), (128, None), (255, None)])
def test_the_signal_behind_an_exit_status(returncode, expected):
    assert killed_by(returncode) is expected


@pytest.mark.parametrize(("run", "words"), [
    (ran(137), "semgrep was killed by SIGKILL (exit 137) after 12.3 s"),
    (ran(-9), "semgrep was killed by SIGKILL (signal 9) after 12.3 s"),
    (ran(143), "semgrep was killed by SIGTERM (exit 143) after 12.3 s"),
    (ran(-15, timed_out=True), "semgrep timed out after 0.5 s and was stopped"),
    (ran(2), "semgrep exited 2 after 12.3 s"),
])
def test_how_a_run_ended_in_words(run, words):
    assert run.ending() == words


def test_a_module_run_is_named_by_its_module():
    assert tool_name(["/usr/bin/python3", "-m", "pytest", "tests"]) == "python3 -m pytest"
    assert tool_name(["/opt/bin/promtool", "check", "rules", "r.yml"]) == "promtool"


@pytest.mark.parametrize(("stderr", "stdout", "line"), [
    ("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: boom\n", "", "ValueError: boom"),
    ("ERROR: invalid rule\nsee the docs\n", "", "ERROR: invalid rule"),
    ("just a note\n", "", "just a note"),
    ("", "ERROR tests/test_app.py - ImportError: no module x\n!!! Interrupted: 1 error during collection !!!\n"
         "===== 1 error in 0.12s =====\n", "ERROR tests/test_app.py - ImportError: no module x"),
    ("", '{"results": [], "errors": []}\n', "no output"),
    ("", "", "no output"),
])
def test_the_tools_last_word_on_what_went_wrong(stderr, stdout, line):
    assert last_error_line(stderr, stdout) == line


def test_a_long_last_line_is_cut():
    assert len(last_error_line("x" * 1000)) == 200


@pytest.mark.parametrize("run", [ran(0), ran(1)])
def test_an_exit_status_the_tool_documents_is_believed(run):
    assert failure(run, (0, 1)) is None
    assert require_ran(run, (0, 1)) is run


@pytest.mark.parametrize(("run", "words"), [
    (ran(137, stdout='{"results": []}'), "semgrep was killed by SIGKILL (exit 137) after 12.3 s; last output: "),
    (ran(-9, stderr="Killed\n"), "semgrep was killed by SIGKILL (signal 9) after 12.3 s; last output: Killed"),
    (ran(-15, stdout="{}", timed_out=True), "semgrep timed out after 0.5 s and was stopped; last output: no output"
                                            " — raise the stage's timeout_s"),
    (ran(2, stderr="Fatal error: bad config\n"), "semgrep exited 2 after 12.3 s; last output: Fatal error: bad config"
                                                 " — semgrep exits 0 or 1 when it ran"),
])
def test_a_killed_stopped_or_failed_tool_is_an_error_that_says_how_whatever_it_printed(run, words):
    with pytest.raises(StageError) as raised:
        require_ran(run, (0, 1))

    assert words in str(raised.value)
    assert "exit code" not in str(raised.value)
    assert run.timed_out or "log: /e/semgrep/semgrep.log" in str(raised.value)


def test_a_signal_is_an_error_even_when_its_status_is_listed():
    assert failure(ran(137), range(256)) is not None
