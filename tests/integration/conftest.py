"""Fixtures shared by the integration tests."""

import pytest

from persistence import engine_from_url
from persistence.migrate import ensure_schema


@pytest.fixture
def engine(db_url):
    """An engine on a migrated, empty database of each backend (see db_url in tests/conftest.py)."""
    ensure_schema(db_url)
    engine = engine_from_url(db_url)
    yield engine
    engine.dispose()
