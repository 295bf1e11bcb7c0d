"""Shared test setup: import the release's own code, and find the running service for live suites."""

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def base_url() -> str:
    url = os.environ.get("RELEASEGATE_BASE_URL")
    if not url:
        pytest.fail("RELEASEGATE_BASE_URL is not set: start the service (python -m flask --app inventory:create_app "
                    "run --port 8000) and export RELEASEGATE_BASE_URL=http://127.0.0.1:8000", pytrace=False)
    return url.rstrip("/")


@pytest.fixture(scope="session")
def contract() -> dict:
    import json
    return json.loads((ROOT / "contracts" / "items.json").read_text(encoding="utf-8"))
