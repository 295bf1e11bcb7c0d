"""Run the Alembic migrations programmatically, from any working directory."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from persistence.engine import engine_from_url

# Package data of persistence: a folder in a checkout and in an installed wheel alike.
MIGRATIONS = Path(str(files("persistence") / "migrations"))


def alembic_config(url: str) -> Config:
    """An Alembic config for the packaged migrations and the database at ``url``."""
    if not (MIGRATIONS / "env.py").is_file():
        raise FileNotFoundError(f"{MIGRATIONS}/env.py not found — the releasegate installation is incomplete: "
                                "reinstall it (the migrations are package data of persistence)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolation
    return config


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision (None when unversioned)."""
    engine = engine_from_url(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def ensure_schema(url: str) -> None:
    """Upgrade to head; only reads the version table when the database is already there."""
    if current(url) != head():
        upgrade(url)
