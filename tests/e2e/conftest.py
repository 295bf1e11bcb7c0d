"""Fixtures for end-to-end runs of the bundled demo service."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.support.demo import DEMO_POLICY, run_cli


@pytest.fixture
def quick_policy(tmp_path: Path) -> Path:
    """The demo policy with a 3 s load test: the same stages and tools, for the many fail-closed runs."""
    policy = yaml.safe_load(DEMO_POLICY.read_text())
    policy["source"]["path"] = str(DEMO_POLICY.parent / "releases" / "{version}")
    policy["scans"]["pip_audit"]["osv_data"] = str(DEMO_POLICY.parent / "advisories.osv.jsonl")
    policy["load"].update(duration_s=3, min_requests=20, remeasure_cooldown_s=0)
    for dependency in policy["environment"].get("dependencies", []):
        dependency["path"] = str(DEMO_POLICY.parent / dependency["path"])
    for experiment in policy.get("chaos", {}).get("experiments", []):
        experiment["file"] = str(DEMO_POLICY.parent / experiment["file"])
    path = tmp_path / "gate.yaml"
    path.write_text(yaml.safe_dump(policy, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def demo_cli_runs(tmp_path_factory) -> dict[str, tuple[int, dict]]:
    """Both demo releases through the CLI, once per test session."""
    home = tmp_path_factory.mktemp("cli-home")
    return {v: run_cli(DEMO_POLICY, v, {"RELEASEGATE_HOME": str(home)}) for v in ("1.0.0", "1.1.0")}
