"""Fixtures for end-to-end runs of the bundled demo service."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.demo import DEMO_POLICY, run_cli, write_quick_policy


@pytest.fixture
def quick_policy(tmp_path: Path) -> Path:
    """The demo policy with a 3 s load test: the same stages and tools, for the many fail-closed runs."""
    return write_quick_policy(tmp_path)


@pytest.fixture(scope="session")
def demo_cli_runs(tmp_path_factory) -> dict[str, tuple[int, dict]]:
    """Both demo releases through the CLI, once per test session."""
    home = tmp_path_factory.mktemp("cli-home")
    return {v: run_cli(DEMO_POLICY, v, {"RELEASEGATE_HOME": str(home)}) for v in ("1.0.0", "1.1.0")}
