"""Versions of the tools a verdict was reached with, recorded so that anyone can replay it."""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from importlib import metadata
from pathlib import Path

from releasegate.domain.errors import StageError
from releasegate.stages.base import find_tool, run_tool

_VERSION_ARGS = {"semgrep": ["--version"], "pip-audit": ["--version"], "locust": ["--version"],
                 "promtool": ["--version"], "amtool": ["--version"], "schemathesis": ["--version"],
                 "detect-secrets": ["--version"]}


VERSION_TIMEOUT_S = 60
_PYTHON_TOOLS = {"semgrep": "semgrep", "pip-audit": "pip-audit", "locust": "locust", "schemathesis": "schemathesis",
                 "detect-secrets": "detect-secrets"}


def tool_versions() -> dict[str, str]:
    """Versions of the tools as this process would run them (overrides via RELEASEGATE_*_BIN included)."""
    overrides = tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith("RELEASEGATE_") and k.endswith("_BIN")))
    return dict(_tool_versions(overrides, os.environ.get("PATH", "")))


@lru_cache(maxsize=8)
def _tool_versions(_overrides: tuple, _path: str) -> tuple[tuple[str, str], ...]:
    versions = {"python": sys.version.split()[0], "releasegate": _own_version()}
    for tool, args in _VERSION_ARGS.items():
        versions[tool] = _version_of(tool, args)
    return tuple(versions.items())


def _own_version() -> str:
    from releasegate import __version__

    return __version__


def _version_of(tool: str, args: list[str]) -> str:
    try:
        path = find_tool(tool)
    except StageError:
        return "unavailable"
    if tool in _PYTHON_TOOLS and Path(path).parent == Path(sys.executable).parent:
        return f"{tool} {metadata.version(_PYTHON_TOOLS[tool])}"  # the gate's own install: no process to start
    try:  # a tool that fails, is killed or hangs while asked its version reports none
        out = run_tool([path, *args], cwd=Path.cwd(), timeout_s=VERSION_TIMEOUT_S, ok=(0,))
    except (StageError, OSError):
        return "unavailable"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0][:120] if lines else "unknown"
