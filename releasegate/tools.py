"""Versions of the tools a verdict was reached with, recorded so that anyone can replay it."""

from __future__ import annotations

import subprocess
import sys
from functools import lru_cache

from releasegate.errors import StageError
from releasegate.stages.base import find_tool

_VERSION_ARGS = {"semgrep": ["--version"], "pip-audit": ["--version"], "locust": ["--version"],
                 "promtool": ["--version"], "amtool": ["--version"]}


@lru_cache(maxsize=1)
def tool_versions() -> dict[str, str]:
    versions = {"python": sys.version.split()[0], "releasegate": _own_version()}
    for tool, args in _VERSION_ARGS.items():
        versions[tool] = _version_of(tool, args)
    return versions


def _own_version() -> str:
    from releasegate import __version__

    return __version__


def _version_of(tool: str, args: list[str]) -> str:
    try:
        out = subprocess.run([find_tool(tool), *args], capture_output=True, text=True, timeout=60)
    except (StageError, OSError, subprocess.TimeoutExpired):
        return "unavailable"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0][:120] if lines else "unknown"
