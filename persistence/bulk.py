"""Many rows at once: PostgreSQL ``COPY ... FROM STDIN`` (psycopg2's ``copy_expert``), the driver's executemany in
batches on SQLite.

The rows stream: neither backend holds more than one batch (``BATCH`` rows, or COPY's read buffer) in memory, so
a 200,000-case suite is written in bounded memory. Nothing is compiled per batch: one COPY, or one INSERT text
for every batch (never a multi-VALUES statement rebuilt per chunk).

These are plain inserts: the caller deletes what a re-run would replace first, in the same transaction
(``StageRepository.upsert``), which keeps every write idempotent.
"""

from __future__ import annotations

import gc
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, date, datetime
from itertools import chain, islice
from operator import call
from typing import Any, TypeVar

from sqlalchemy import JSON, Connection, Table
from sqlalchemy.orm import Session

from releasegate.jsontext import encoder

BATCH = 5_000
_V = TypeVar("_V")
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


@contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection while a bulk write builds its rows: tens of thousands of fresh dicts and
    tuples (none of them in a cycle) otherwise set off collection after collection, which costs more than the
    write itself. Collection resumes as it was when the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_FLAT_JSON: dict[tuple[Any, ...], str] = {}
_FLAT_JSON_ENTRIES = 4096


def flat_json(value: dict[str, Any], sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """``json.dumps(value, separators=(",", ":"), default=str, ...)``, answered from a small cache for the flat dicts
    of plain values that recur by the thousand (an audit payload such as ``{"from": "new", "to": "fixed"}``); any
    other dict goes straight to a reused encoder."""
    if not all(v is None or v.__class__ in _CACHEABLE for v in value.values()):
        return compact_json(value, sort_keys, ensure_ascii)
    key = (sort_keys, ensure_ascii, *((k, v.__class__, v) for k, v in value.items()))  # True is not 1 here
    text = _FLAT_JSON.get(key)
    if text is None:
        text = compact_json(value, sort_keys, ensure_ascii)
        if len(_FLAT_JSON) >= _FLAT_JSON_ENTRIES:
            _FLAT_JSON.clear()
        _FLAT_JSON[key] = text
    return text


_CACHEABLE = (str, int, bool)


def compact_json(value: Any, sort_keys: bool = False, ensure_ascii: bool = False) -> str:
    """``json.dumps(value, separators=(",", ":"), default=str, ...)`` through an encoder built once
    (releasegate.jsontext: json.dumps builds its C encoder anew on every call)."""
    return encoder(sort_keys, ensure_ascii)(value)


class JsonText(str):
    """A value of a JSON column already written as JSON: stored as this text rather than encoded again."""


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
                constants: Mapping[str, Any] | None = None) -> int:
    """Insert ``rows`` (each a sequence of values in the order of ``columns``); return how many were written.
    ``constants``: further columns whose value is the same in every row (a run's id, a timestamp), given once and
    converted once rather than carried and converted in each row."""
    constants = dict(constants or {})
    if session.get_bind().dialect.name == "postgresql":
        return copy_rows(session, table, columns, rows, constants)
    tail = tuple(constants.values())
    return _executemany(session, table, [*columns, *constants], ((*row, *tail) for row in rows) if tail else rows)


def copy_rows(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]],
              constants: Mapping[str, Any] | None = None) -> int:
    """PostgreSQL only: the rows through ``COPY table (columns) FROM STDIN`` in the session's transaction (the
    ``constants`` columns written out once, as every line's end)."""
    constants = dict(constants or {})
    tail = "".join("\t" + _converter(table, c)(v) for c, v in constants.items()) + "\n"
    source = CopySource(_copy_lines(rows, [_converter(table, c) for c in columns], tail))
    cursor = _dbapi(session.connection()).cursor()
    try:
        cursor.copy_expert(f"COPY {table.name} ({', '.join([*columns, *constants])}) FROM STDIN", source,
                           size=1 << 16)
    finally:
        cursor.close()
    return source.lines


def _copy_lines(rows: Iterable[Sequence[Any]], converters: list[Callable[[Any], str]],
                tail: str = "\n") -> Iterator[str]:
    """Each row as a line of COPY's text format, ending in ``tail`` (the constant columns' text and the newline).
    In a column whose value is mostly the very object the row before held (a batch's service, run id, timestamps;
    immutable values only), a repeated value is not converted again; which columns those are is read from the
    first rows."""
    width = len(converters)
    iterator = iter(rows)
    sample = list(islice(iterator, _SAMPLE_ROWS))
    chosen = [_remembering(convert) if _repeats(sample, i) else convert for i, convert in enumerate(converters)]
    join = "\t".join
    for row in chain(sample, iterator):
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} values for {width} columns")
        yield join(map(call, chosen, row)) + tail


_SAMPLE_ROWS = 32


def _repeats(sample: list[Sequence[Any]], column: int) -> bool:
    """Whether at least half the sampled rows hold the very object the row before held in the column."""
    if len(sample) < 2 or any(len(row) <= column for row in sample):
        return True
    same = sum(1 for before, row in zip(sample, sample[1:]) if row[column] is before[column])
    return same * 2 >= len(sample) - 1


def _dbapi(connection: Connection) -> Any:
    """The driver's own connection under a SQLAlchemy one (for COPY and a plain executemany)."""
    raw = connection.connection.dbapi_connection
    if raw is None:
        raise RuntimeError("the database connection was closed before the bulk write")
    return raw


def _remembering(convert: Callable[[Any], _V]) -> Callable[[Any], _V]:
    """``convert``, answering again without calling it when given the very (immutable) object it was given last."""
    last_value: list[Any] = [_UNSET]
    last_answer: list[_V] = []

    def converted(value: Any) -> _V:
        if value is last_value[0]:
            return last_answer[0]
        answer = convert(value)
        last_value[0] = value if value.__class__ in _IMMUTABLE else _UNSET
        last_answer[:] = [answer]
        return answer

    return converted


_UNSET = object()
_IMMUTABLE = frozenset({str, int, float, bool, datetime, date, type(None)})  # the same object, the same text


def _executemany(session: Session, table: Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Batches through the driver's executemany, each value through its column type's bind processor (what the
    ORM would do per row, without building a parameter dict per row)."""
    connection = session.connection()
    dialect = connection.dialect
    processors = [_bind_processor(table, c, dialect) for c in columns]
    pairs = [(i, _remembering(p)) for i, p in enumerate(processors) if p is not None]  # repeated values once
    sql = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    cursor = _dbapi(connection).cursor()
    written = 0
    iterator = iter(rows)
    try:
        while batch := [_processed(row, pairs) for row in islice(iterator, BATCH)]:
            cursor.executemany(sql, batch)
            written += len(batch)
    finally:
        cursor.close()
    return written


def _bind_processor(table: Table, column: str, dialect: Any) -> Callable[[Any], Any] | None:
    """The column type's bind processor; for a JSON column, one that stores a ``JsonText`` as it is."""
    process: Callable[[Any], Any] | None = table.c[column].type._cached_bind_processor(dialect)
    if process is None or not _is_json(table, column):
        return process
    encode = process
    return lambda value: (value if value.__class__ is JsonText else compact_json(value)
                          if value.__class__ in (dict, list) else encode(value))


def _processed(row: Sequence[Any], pairs: list[tuple[int, Any]]) -> list[Any]:
    values = list(row)
    for i, process in pairs:
        values[i] = process(values[i])
    return values


def _converter(table: Table, column: str) -> Callable[[Any], str]:
    """How a value of the column is written in COPY's text format (NULL as ``\\N``)."""
    if _is_json(table, column):
        return lambda v: "\\N" if v is None else _copy_value(v, True)
    try:
        python_type = table.c[column].type.python_type
    except NotImplementedError:
        python_type = object
    if python_type is str:
        return _text_value
    if python_type in (int, float):
        return lambda v: "\\N" if v is None else repr(v) if isinstance(v, float) else str(v)
    return lambda v: _copy_value(v, False)


def _is_json(table: Table, column: str) -> bool:
    return isinstance(table.c[column].type, JSON)


def copy_line(row: Sequence[Any], json_columns: frozenset[int] | set[int] = frozenset()) -> str:
    """One row in COPY's text format: tab-separated, ``\\N`` for NULL, backslash escapes."""
    return "\t".join(_copy_value(v, i in json_columns) for i, v in enumerate(row)) + "\n"


def _copy_value(value: Any, as_json: bool) -> str:
    if value is None:
        return "\\N"
    if as_json:
        if value.__class__ is JsonText:
            return copy_text(value)
        return copy_text(compact_json(value))  # mostly distinct values: no cache
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return copy_text(str(value))


_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]").search


def _text_value(value: Any) -> str:
    if value is None:
        return "\\N"
    if value.__class__ is not str:
        value = str(value)
    return copy_text(value) if _NEEDS_ESCAPE(value) else value


def copy_text(text: str) -> str:
    """Text escaped for COPY's text format (most text needs nothing, and is returned as it is)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        text = text.translate(_COPY_ESCAPES)
    return text.replace("\x00", "") if "\x00" in text else text


class CopySource(io.RawIOBase):
    """A file-like object over an iterator of text lines, read by ``copy_expert`` a buffer at a time."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = iter(lines)
        self._pending = b""
        self.lines = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        size = 1 << 16 if size is None or size < 0 else size
        parts, have = [self._pending], len(self._pending)
        for line in self._lines:
            data = line.encode("utf-8")
            parts.append(data)
            have += len(data)
            self.lines += 1
            if have >= size:
                break
        data = b"".join(parts)
        self._pending = data[size:]
        return data[:size]
