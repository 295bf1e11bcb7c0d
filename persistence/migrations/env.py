"""Alembic environment for the gate database (SQLite and PostgreSQL)."""

from __future__ import annotations

import os
import sys
from logging.config import fileConfig
from pathlib import Path
from typing import Any

from alembic import context

try:
    import persistence  # noqa: F401
except ImportError:  # alembic run from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from persistence.engine import ENV_URL, engine_from_url
from persistence.tables import metadata

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get(ENV_URL)
    if not url:
        raise RuntimeError(f"no database URL: set {ENV_URL} (e.g. sqlite:////path/to/gate.db or "
                           "postgresql://user@host/db) or sqlalchemy.url in the Alembic config")
    return url


def configure(**kwargs: Any) -> None:
    # transactional_ddl: engine_from_url makes SQLite transactions real (explicit BEGIN), so a failed
    # migration rolls back there too
    context.configure(target_metadata=metadata, compare_type=True, render_as_batch=True, transactional_ddl=True,
                      **kwargs)


def run_migrations_offline() -> None:
    configure(url=database_url(), literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = engine_from_url(database_url())
    try:
        with engine.connect() as connection:
            configure(connection=connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
