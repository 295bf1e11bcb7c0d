"""Database helpers for tests."""

from sqlalchemy import inspect

from persistence import engine_from_url


def table_names(url: str) -> set[str]:
    engine = engine_from_url(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
