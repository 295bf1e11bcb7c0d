"""Evidence files are written whole or not at all: a temporary file beside the target, flushed to disk, then
renamed over it (os.replace). A full disk or a crash leaves the previous file, or none, never half a file.

Temporary files start with `.tmp-`; the manifest leaves them out and the next write cleans them up.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TEMP_PREFIX = ".tmp-"


def is_temporary(path: Path) -> bool:
    return path.name.startswith(TEMP_PREFIX)


def temporary_for(path: Path) -> Path:
    return path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(4)}-{path.name}")


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[BinaryIO]:
    """A binary file that becomes `path` when the block ends without an error (and is removed if it does not)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temporary_for(path)
    try:
        with open(temp, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_atomic(path: Path, data: bytes | str) -> Path:
    """Write `data` (text as UTF-8) to `path` atomically; return `path`."""
    with atomic_writer(path) as out:
        out.write(data.encode("utf-8") if isinstance(data, str) else data)
    return Path(path)


class Staged:
    """Files written beside their targets first and put in place together later, in the order staged.

        staged = Staged(); staged.add(folder / "report.html", html); ...   # a full disk fails here
        record_in_database(...)                                           # the decision is kept first
        staged.commit()                                                   # then the files appear
    """

    def __init__(self) -> None:
        self._pending: list[tuple[Path, Path]] = []

    def add(self, path: Path, data: bytes | str) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temp = temporary_for(path)
        try:
            with open(temp, "wb") as out:
                out.write(data.encode("utf-8") if isinstance(data, str) else data)
                out.flush()
                os.fsync(out.fileno())
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        self._pending.append((temp, path))
        return temp

    @property
    def targets(self) -> list[Path]:
        return [target for _temp, target in self._pending]

    def commit(self) -> None:
        """Rename every staged file over its target, in order; on an error the rest are discarded."""
        try:
            while self._pending:
                temp, target = self._pending[0]
                os.replace(temp, target)
                self._pending.pop(0)
        finally:
            self.discard()

    def discard(self) -> None:
        for temp, _target in self._pending:
            temp.unlink(missing_ok=True)
        self._pending.clear()


def remove_temporaries(folder: Path) -> None:
    """Temporary files a crashed write left in `folder` (and below)."""
    for temp in Path(folder).rglob(f"{TEMP_PREFIX}*"):
        with contextlib.suppress(OSError):
            if temp.is_file():
                temp.unlink()
