"""A database's schema as plain data (SQLAlchemy inspection), and what differs between two of them.

`snapshot` reads tables, columns (type, nullability, default), primary keys, indexes, unique, foreign-key and
check constraints into sorted JSON-ready data; `schema_diff` says in words what one snapshot has that the other
lacks or holds differently, naming the table and the column, index or constraint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Engine, inspect

Schema = dict[str, dict[str, Any]]


def snapshot(engine: Engine) -> Schema:
    """Every table of the default schema with what defines it."""
    found = inspect(engine)
    return {table: _table(found, table) for table in sorted(found.get_table_names())}


def _table(found: Any, table: str) -> dict[str, Any]:
    return {
        "columns": {c["name"]: {"type": str(c["type"]), "nullable": bool(c["nullable"]),
                                "default": None if c.get("default") is None else str(c["default"])}
                    for c in found.get_columns(table)},
        "primary_key": sorted(found.get_pk_constraint(table).get("constrained_columns") or []),
        "indexes": _named(found.get_indexes(table), ("column_names", "unique")),
        "unique": _named(found.get_unique_constraints(table), ("column_names",)),
        "foreign_keys": _named(found.get_foreign_keys(table), ("constrained_columns", "referred_table",
                                                                "referred_columns")),
        "checks": _named(_checks(found, table), ("sqltext",)),
    }


def _checks(found: Any, table: str) -> list[dict[str, Any]]:
    try:
        return list(found.get_check_constraints(table))
    except NotImplementedError:  # a dialect that cannot list them: nothing to compare, said in the snapshot
        return [{"name": "(not listed by this database)", "sqltext": ""}]


def _named(items: Sequence[Mapping[str, Any]], keys: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Indexes and constraints by name (unnamed ones by what they cover), each with the keys that define it."""
    named: dict[str, dict[str, Any]] = {}
    for item in items:
        body = {k: _plain(item.get(k)) for k in keys}
        named[str(item.get("name") or f"(unnamed {body})")] = body
    return dict(sorted(named.items()))


def _plain(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value if value is None or isinstance(value, (bool, int, float)) else str(value)


def schema_diff(before: Schema, after: Schema) -> list[str]:
    """What `after` holds differently from `before`, one line per table, column, index or constraint."""
    lines = [f"table {t}: missing" for t in sorted(before.keys() - after.keys())]
    lines += [f"table {t}: added" for t in sorted(after.keys() - before.keys())]
    for table in sorted(before.keys() & after.keys()):
        lines += _table_diff(table, before[table], after[table])
    return lines


def _table_diff(table: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines: list[str] = []
    for part, word in (("columns", "column"), ("indexes", "index"), ("unique", "unique constraint"),
                       ("foreign_keys", "foreign key"), ("checks", "check constraint")):
        lines += _part_diff(f"table {table}: {word}", before[part], after[part])
    if before["primary_key"] != after["primary_key"]:
        lines.append(f"table {table}: primary key {before['primary_key']} became {after['primary_key']}")
    return lines


def _part_diff(what: str, before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    lines = [f"{what} {name}: missing" for name in sorted(before.keys() - after.keys())]
    lines += [f"{what} {name}: added" for name in sorted(after.keys() - before.keys())]
    for name in sorted(before.keys() & after.keys()):
        changed = [f"{k} {before[name][k]!r} became {after[name][k]!r}"
                   for k in before[name] if before[name][k] != after[name].get(k)]
        if changed:
            lines.append(f"{what} {name}: {', '.join(changed)}")
    return lines
