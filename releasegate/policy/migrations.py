"""The `migrations` section: how the service migrates its database up and down, checked on a scratch database."""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from releasegate.domain.models import Severity
from releasegate.policy.spec import MAX_TIMEOUT_S, Command, Env, _Spec


class Migrations(_Spec):
    """up -> down -> up on a database the gate creates for the run and drops afterwards; the schema is compared
    after each step. {database_url} in the commands and env is the scratch database's URL."""

    up: Command = Field(description="Migrates the scratch database to the newest revision, e.g. "
                                    "'{python} -m alembic upgrade head' (not run by a shell).")
    down: Command = Field(description="Migrates it back down, e.g. '{python} -m alembic downgrade base'.")
    env: Env = Field(default_factory=dict, description="Environment of both commands, e.g. "
                                                       "DATABASE_URL: '{database_url}'.")
    server: str | None = Field(
        None, description="A PostgreSQL server URL the gate may create databases on (e.g. "
                          "postgresql://postgres@127.0.0.1:5432/postgres): the scratch database is a fresh database "
                          "there, dropped afterwards. Without it, a SQLite file the gate deletes afterwards.")
    revision_pattern: str | None = Field(
        None, description="A regular expression with one group that finds the revision a command was running in its "
                          "output, for tools the gate does not know (Alembic, Flask-Migrate and Django it reads).")
    budget_s: float = Field(60, gt=0, le=MAX_TIMEOUT_S, description="Longest a step (up or down) may take; "
                                                                     "longer is a finding.")
    timeout_s: float = Field(600, gt=0, le=MAX_TIMEOUT_S, description="A step still running then is stopped and "
                                                                      "the stage is an error.")
    severity: Severity = Field(Severity.high, description="Severity of a failing step or a changed schema.")
    required: bool = True

    @field_validator("server")
    @classmethod
    def _postgres_server(cls, server: str | None) -> str | None:
        if server is not None and not re.match(r"^postgres(ql)?(\+\w+)?://", server):
            raise ValueError("server must be a PostgreSQL URL, e.g. postgresql://postgres@127.0.0.1:5432/postgres "
                             "(leave it out for a SQLite scratch file)")
        return server

    @field_validator("revision_pattern")
    @classmethod
    def _one_group(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            groups = re.compile(pattern).groups
        except re.error as exc:
            raise ValueError(f"not a regular expression ({exc})") from None
        if groups != 1:
            raise ValueError(f"needs exactly one group (the revision), has {groups}, e.g. 'Reverting (\\S+)'")
        return pattern
