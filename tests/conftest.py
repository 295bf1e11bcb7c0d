"""Shared fixtures: a private RELEASEGATE_HOME per test, SQLite and PostgreSQL database URLs."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

PG_ADMIN_URL_ENV = "RELEASEGATE_TEST_PG_ADMIN_URL"
PG_ADMIN_URL_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(autouse=True)
def releasegate_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No test writes into the user's ~/.releasegate or into a database named by their environment."""
    home = tmp_path_factory.mktemp("releasegate_home")
    monkeypatch.setenv("RELEASEGATE_HOME", str(home))
    monkeypatch.delenv("RELEASEGATE_DB_URL", raising=False)
    return home


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'gate.db'}"


def _unreachable(admin_url: str, error: Exception) -> None:
    shown = make_url(admin_url).render_as_string(hide_password=True)
    message = f"PostgreSQL not reachable at {shown}: {str(error).strip().splitlines()[0]}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} (CI=true: the CI machine has a server, so this is an error)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database ``releasegate_test_<random>`` on the test server, dropped at the end of the session."""
    admin_url = os.environ.get(PG_ADMIN_URL_ENV, PG_ADMIN_URL_DEFAULT)
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    name = f"releasegate_test_{secrets.token_hex(4)}"
    try:
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as error:
        admin.dispose()
        _unreachable(admin_url, error)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _empty_pg_schema(url: str) -> None:
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> str:
    """An empty database on each backend the gate supports (the PostgreSQL one is wiped per test)."""
    if request.param == "sqlite":
        return request.getfixturevalue("sqlite_url")
    url = request.getfixturevalue("pg_url")
    _empty_pg_schema(url)
    return url


@pytest.fixture
def cli_db(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """RELEASEGATE_DB_URL at the test database, and no engine cached from an earlier test's database."""
    from releasegate.records import store

    monkeypatch.setenv("RELEASEGATE_DB_URL", db_url)
    store.forget_engines()
    yield db_url
    store.forget_engines()
