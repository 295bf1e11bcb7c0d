"""Run the Alembic migrations programmatically, from any working directory."""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from persistence.engine import engine_from_url

if TYPE_CHECKING:
    from alembic.config import Config

# Package data of persistence: a folder in a checkout and in an installed wheel alike.
MIGRATIONS = Path(str(files("persistence") / "migrations"))


def alembic_config(url: str) -> Config:
    """An Alembic config for the packaged migrations and the database at ``url``."""
    from alembic.config import Config

    if not (MIGRATIONS / "env.py").is_file():
        raise FileNotFoundError(f"{MIGRATIONS}/env.py not found — the releasegate installation is incomplete: "
                                "reinstall it (the migrations are package data of persistence)")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))  # configparser interpolation
    return config


def upgrade(url: str, revision: str = "head") -> None:
    from alembic import command

    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    from alembic import command

    command.downgrade(alembic_config(url), revision)


def current(url: str) -> str | None:
    """The database's revision (None when unversioned)."""
    from alembic.runtime.migration import MigrationContext

    engine = engine_from_url(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def head() -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


_REVISION = re.compile(r'^(down_revision|revision)(?:\s*:[^=]*)?=\s*["\']?([^"\'\s]+)', re.M)


@lru_cache(maxsize=1)
def packaged_head() -> str | None:
    """The newest revision, read from the version files without loading Alembic (every task process asks)."""
    revisions, parents = set(), set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        revisions.add(found.get("revision"))
        parents.add(found.get("down_revision"))
    heads = revisions - parents - {None}
    return heads.pop() if len(heads) == 1 else head()  # a branch point: let Alembic decide


def stored_revision(url: str) -> str | None:
    """The revision in the database's version table; None when there is none yet."""
    engine = engine_from_url(url)
    try:
        with engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except DBAPIError:
        return None
    finally:
        engine.dispose()


def ensure_schema(url: str) -> None:
    """Upgrade to head; when the database is already there this is one query and no Alembic import."""
    if stored_revision(url) != packaged_head():
        upgrade(url)
