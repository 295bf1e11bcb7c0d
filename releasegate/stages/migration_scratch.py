"""The scratch database the `migrations` stage migrates: created for one attempt, dropped whatever happened.

SQLite: a file in a folder of its own under the gate's home, deleted with the folder. PostgreSQL: a fresh
database ``rg_migrations_<random>`` on the server the policy names, dropped ``WITH (FORCE)`` (a migration tool the
gate stopped may still hold a connection). The tool gets the URL with the policy's driver; the gate inspects it
through psycopg2, the driver it ships with.
"""

from __future__ import annotations

import logging
import secrets
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from releasegate.context import gate_home
from releasegate.domain.errors import StageError
from releasegate.redact import redact

log = logging.getLogger("releasegate")

PREFIX = "rg_migrations_"
CONNECT_TIMEOUT_S = 10


@dataclass(frozen=True)
class Scratch:
    url: str        # for the migration tool: {database_url}
    engine: Engine  # for the gate's inspection
    where: str      # in words, without secrets: for messages


@contextmanager
def scratch_database(server: str | None) -> Iterator[Scratch]:
    """A new, empty database for one round trip; gone when the block ends, even when it raised."""
    with _postgres(server) if server else _sqlite() as scratch:
        yield scratch


@contextmanager
def _sqlite() -> Iterator[Scratch]:
    folder = gate_home() / "scratch" / f"{PREFIX}{secrets.token_hex(6)}"
    folder.mkdir(parents=True)
    url = f"sqlite:///{folder / 'scratch.db'}"
    engine = create_engine(url, poolclass=NullPool)
    try:
        yield Scratch(url, engine, f"SQLite file {folder / 'scratch.db'}")
    finally:
        engine.dispose()
        shutil.rmtree(folder, ignore_errors=True)


def inspection_url(url: str | URL) -> URL:
    """The URL through the gate's own driver (a bare postgresql:// or another driver becomes psycopg2)."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql+psycopg2") if parsed.get_backend_name() == "postgresql" else parsed


@contextmanager
def _postgres(server: str) -> Iterator[Scratch]:
    name = f"{PREFIX}{secrets.token_hex(6)}"
    admin = create_engine(inspection_url(server), isolation_level="AUTOCOMMIT", poolclass=NullPool,
                          connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    shown = make_url(server).render_as_string(hide_password=True)
    try:
        _execute(admin, f'CREATE DATABASE "{name}"')
    except SQLAlchemyError as exc:
        admin.dispose()
        raise StageError(f"cannot create the scratch database on {shown}: {_first_line(exc)} — check that the "
                         "server runs and that the user may CREATE DATABASE (migrations.server)") from None
    url = make_url(server).set(database=name)
    engine = create_engine(inspection_url(url), poolclass=NullPool, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    try:
        yield Scratch(url.render_as_string(hide_password=False), engine, f"database {name} on {shown}")
    finally:
        engine.dispose()
        _drop(admin, name, shown)
        admin.dispose()


def _drop(admin: Engine, name: str, shown: str) -> None:
    try:
        _execute(admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except SQLAlchemyError as exc:  # reported, never hidden: the run leaves something behind
        log.error("migrations: could not drop the scratch database %s on %s: %s — drop it by hand", name, shown,
                  _first_line(exc))
        raise StageError(f"could not drop the scratch database {name} on {shown}: {_first_line(exc)} — "
                         "drop it by hand") from None


def _execute(engine: Engine, statement: str) -> None:
    with engine.connect() as connection:
        connection.execute(text(statement))


def _first_line(exc: BaseException) -> str:
    said = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return redact(said[0] if said else type(exc).__name__)[:200]
