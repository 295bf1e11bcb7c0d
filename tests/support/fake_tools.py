"""Fake tools for fault tests: small programs that answer like the real tool, then end the way a test asks.

    tool = fake_tool(tmp_path, "semgrep", "emit(None, DOC)", {"DOC": '{"results": []}'},
                     output="full", ending="exit137")
    monkeypatch.setenv("RELEASEGATE_SEMGREP_BIN", str(tool))

`answer` is Python run by the fake with `ARGS` (its arguments), `option(name)` (the value after an
option, as `--opt VALUE` or `--opt=VALUE`) and `emit(dest, text)` (write text to the file dest, or to
stdout when dest is None) at hand. How much `emit` writes and how the fake ends are the fault:

- output: `full`, `truncated` (the first half), `empty` (zero bytes) or `none` (nothing at all);
- ending: `exitN` (e.g. `exit0`; `exit137` is what a shell reports for a child killed by SIGKILL),
  `sigkill` (the fake kills itself) or `hang` (sleeps 30 s: longer than any timeout a fault test sets).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

OUTPUTS = ("full", "truncated", "empty", "none")
ENDINGS = re.compile(r"exit\d+|sigkill|hang")

_PROGRAM = '''#!{python} -I
import os, signal, sys, time

ARGS = sys.argv[1:]
OUTPUT, ENDING = {output!r}, {ending!r}
{constants}


def option(name):
    for i, arg in enumerate(ARGS):
        if arg == name and i + 1 < len(ARGS):
            return ARGS[i + 1]
        if arg.startswith(name + "="):
            return arg[len(name) + 1:]
    sys.exit(f"fake: no {{name}} in {{ARGS}}")


def emit(dest, text):
    if OUTPUT == "none":
        return
    text = {{"full": text, "truncated": text[: len(text) // 2], "empty": ""}}[OUTPUT]
    if dest is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        with open(dest, "w", encoding="utf-8") as out:
            out.write(text)


{answer}

if ENDING == "sigkill":
    os.kill(os.getpid(), signal.SIGKILL)
if ENDING == "hang":
    time.sleep(30)
sys.exit(int(ENDING.removeprefix("exit")))
'''


def fake_tool(folder: Path, name: str, answer: str, constants: dict[str, str] | None = None, *,
              output: str = "full", ending: str = "exit0") -> Path:
    """An executable `folder/name` that runs `answer` (with the constants defined), then ends as asked."""
    assert output in OUTPUTS and ENDINGS.fullmatch(ending), (output, ending)
    folder.mkdir(parents=True, exist_ok=True)
    defined = "\n".join(f"{key} = {value!r}" for key, value in (constants or {}).items())
    path = folder / name
    path.write_text(_PROGRAM.format(python=sys.executable, output=output, ending=ending, constants=defined,
                                    answer=answer), encoding="utf-8")
    path.chmod(0o755)
    return path


def tool_variable(name: str) -> str:
    """The environment variable that points the gate at a tool (see releasegate.stages.base.find_tool)."""
    return f"RELEASEGATE_{name.upper().replace('-', '_')}_BIN"
