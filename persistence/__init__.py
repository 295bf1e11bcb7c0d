"""The gate's own database: tables, repositories, unit of work, engine from a URL. Imports SQLAlchemy only."""

from persistence.engine import engine_from_url, resolve_url
from persistence.tables import metadata
from persistence.uow import UnitOfWork

__all__ = ["UnitOfWork", "engine_from_url", "metadata", "resolve_url"]
