"""Backup and restore of the gate database.

SQLite: the sqlite3 online backup API (a consistent copy even while the gate writes).
PostgreSQL: ``pg_dump --format=custom`` and ``pg_restore --clean --if-exists --no-owner`` in a single
transaction. The password travels in ``PGPASSWORD``, never on a command line (``ps`` shows those).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import URL, make_url

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"
_INSTALL = ("install the PostgreSQL client tools of the server's major version or newer "
            "(Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq)")


class BackupError(RuntimeError):
    """A backup or restore could not be made; the message says what to do."""


def backup(url: str, file: str | Path) -> Path:
    """Write a backup of the database at ``url`` to ``file`` (replaced only once the copy is complete)."""
    target = Path(file).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    parsed = make_url(url)
    try:
        _sqlite_copy(_sqlite_path(parsed), partial) if _is_sqlite(parsed) else _pg_dump(parsed, partial)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(target)
    return target


def restore(url: str, file: str | Path) -> None:
    """Replace the contents of the database at ``url`` with the backup in ``file``."""
    source = Path(file).expanduser().resolve()
    parsed = make_url(url)
    _check_backup_file(source, sqlite=_is_sqlite(parsed))
    if _is_sqlite(parsed):
        _sqlite_copy(source, _sqlite_path(parsed))
    else:
        _pg_restore(parsed, source)


def _is_sqlite(url: URL) -> bool:
    return url.get_backend_name() == "sqlite"


def _sqlite_path(url: URL) -> Path:
    if not url.database or url.database == ":memory:":
        raise BackupError(f"{url}: an in-memory SQLite database has nothing to back up — use a file URL, "
                          "e.g. sqlite:////var/lib/releasegate/gate.db")
    return Path(url.database).expanduser().resolve()


def _sqlite_copy(source: Path, target: Path) -> None:
    if not source.is_file():
        raise BackupError(f"{source} does not exist — check the path (RELEASEGATE_DB_URL or the backup file)")
    target.parent.mkdir(parents=True, exist_ok=True)
    src = sqlite3.connect(source, timeout=30)
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst)  # page by page, under SQLite's own locking: consistent even while others write
    finally:
        dst.close()
        src.close()


def _check_backup_file(file: Path, sqlite: bool) -> None:
    if not file.is_file():
        raise BackupError(f"{file}: no such backup file — give the path `releasegate db backup` wrote")
    with file.open("rb") as stream:
        head = stream.read(16)
    expected, other = (SQLITE_MAGIC, "a PostgreSQL dump") if sqlite else (PGDUMP_MAGIC, "a SQLite file")
    if not head.startswith(expected):
        kind = other if head.startswith(PGDUMP_MAGIC if sqlite else SQLITE_MAGIC) else "not a gate backup"
        backend = "SQLite" if sqlite else "PostgreSQL"
        raise BackupError(f"{file} is {kind}, and the database is {backend}: restore a backup made from a "
                          f"{backend} gate database (or point RELEASEGATE_DB_URL at the matching backend)")


def libpq_target(url: URL) -> tuple[str, dict[str, str]]:
    """(a libpq connection URI without the password, environment carrying the password) for ``url``."""
    env = dict(os.environ)
    if url.password is not None:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(f"{name} not found on PATH — {_INSTALL}")
    return path


def _run(command: list[str], env: dict[str, str], what: str) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise BackupError(f"{what} failed (exit {done.returncode}): {' / '.join(detail)} — check that the server "
                          "is reachable, the user may read every table, and the client is not older than the server")


def _pg_dump(url: URL, file: Path) -> None:
    uri, env = libpq_target(url)
    _run([_tool("pg_dump"), "--format=custom", "--no-owner", f"--file={file}", f"--dbname={uri}"], env, "pg_dump")


def _pg_restore(url: URL, file: Path) -> None:
    uri, env = libpq_target(url)
    _run([_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction", "--exit-on-error",
          f"--dbname={uri}", str(file)], env, "pg_restore")
