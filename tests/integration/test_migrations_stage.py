"""The `migrations` stage on small real Alembic projects: up -> down -> up on a scratch SQLite file and on a fresh
PostgreSQL database, a downgrade that fails, a round trip that changes the schema, a step over budget, a tool that
cannot start; and nothing the stage created remains."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from releasegate.context import gate_home, open_run
from releasegate.domain.models import Status
from releasegate.policy import load_policy
from releasegate.stages import registry

PG_SERVER = os.environ.get("RELEASEGATE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

ALEMBIC_INI = """\
[alembic]
script_location = migrations
[loggers]
keys = root,alembic
[handlers]
keys = console
[formatters]
keys = generic
[logger_root]
level = WARNING
handlers = console
[logger_alembic]
level = INFO
handlers =
qualname = alembic
[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic
[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
"""

ENV_PY = """\
import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy import create_engine

fileConfig(context.config.config_file_name)
engine = create_engine(os.environ["DATABASE_URL"])
with engine.connect() as connection:
    context.configure(connection=connection, target_metadata=None)
    with context.begin_transaction():
        context.run_migrations()
"""

ITEMS = """\
import sqlalchemy as sa
from alembic import op

revision, down_revision = "0001_items", None


def upgrade():
    op.create_table("items", sa.Column("id", sa.Integer, primary_key=True),
                    sa.Column("sku", sa.String(32), nullable=False, unique=True),
                    sa.Column("name", sa.String(200), nullable=False))
    op.create_index("items_name", "items", ["name"])


def downgrade():
    op.drop_index("items_name", table_name="items")
    op.drop_table("items")
"""

RESTOCK = """\
import sqlalchemy as sa
from alembic import op

revision, down_revision = "0002_restock", "0001_items"


def upgrade():
    op.add_column("items", sa.Column("restock_below", sa.Integer, nullable=True))
    op.create_index("items_restock", "items", ["restock_below"])


def downgrade():
{downgrade}
"""

HEALTHY_DOWN = """\
    op.drop_index("items_restock", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("restock_below")
"""
FAILING_DOWN = """\
    raise RuntimeError("restock_below is still read by the notifier")
"""
# drops one index too many: undone one revision (downgrade -1), the second upgrade does not bring items_name back
LOSSY_DOWN = """\
    op.drop_index("items_name", table_name="items")
""" + HEALTHY_DOWN


def alembic_service(folder: Path, downgrade: str, server: str | None, **migrations: object) -> tuple:
    """A service with a two-revision Alembic project and a policy whose migrations section runs it."""
    versions = folder / "migrations" / "versions"
    versions.mkdir(parents=True)
    (folder / "alembic.ini").write_text(ALEMBIC_INI)
    (folder / "migrations" / "env.py").write_text(ENV_PY)
    (versions / "0001_items.py").write_text(ITEMS)
    (versions / "0002_restock.py").write_text(RESTOCK.format(downgrade=downgrade.rstrip()))
    section = {"up": "{python} -m alembic upgrade head", "down": "{python} -m alembic downgrade base",
               "env": {"DATABASE_URL": "{database_url}"}, **migrations}
    if server:
        section["server"] = server
    (folder / "gate.yaml").write_text(yaml.safe_dump({"service": "shop", "source": {"path": "."},
                                                      "migrations": section}))
    policy = load_policy(folder / "gate.yaml")
    return policy, open_run(policy, "1.0.0")


def run_stage(folder: Path, downgrade: str, server: str | None, **migrations: object):
    policy, ctx = alembic_service(folder, downgrade, server, **migrations)
    planned = registry.find(policy, "migrations")
    return planned.stage.run(policy, ctx, None, planned)


def scratch_databases(server: str) -> set[str]:
    engine = create_engine(server.replace("postgresql://", "postgresql+psycopg2://", 1))
    try:
        with engine.connect() as connection:
            return set(connection.execute(text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'rg_migrations_%'")).scalars())
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest):
    """None (a SQLite scratch file) or the PostgreSQL server; afterwards no scratch database of the stage remains."""
    if request.param == "sqlite":
        yield None
        assert not any((gate_home() / "scratch").glob("*")), "a scratch SQLite folder was left behind"
        return
    try:
        before = scratch_databases(PG_SERVER)
    except OperationalError as error:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL not reachable at {PG_SERVER}: {error} (CI=true)")
        pytest.skip(f"PostgreSQL not reachable at {PG_SERVER}")
    yield PG_SERVER
    assert scratch_databases(PG_SERVER) - before == set(), "a scratch database was left behind"


def test_a_healthy_round_trip_passes_with_the_schemas_as_evidence(tmp_path: Path, server):
    result = run_stage(tmp_path, HEALTHY_DOWN, server)

    assert (result.status, result.findings) == (Status.passed, []), result.error or result.summary
    metrics = {m.name: m.value for m in result.metrics}
    assert metrics["tables"] == 2  # items and alembic_version
    assert {"up_duration", "down_duration", "up_again_duration"} <= metrics.keys()
    schemas = Path(next(a.path for a in result.artifacts if a.name == "schemas.json")).read_text()
    assert '"restock_below"' in schemas and '"round_trip_differences": []' in schemas


def test_a_failing_downgrade_is_a_finding_naming_the_revision(tmp_path: Path, server):
    result = run_stage(tmp_path, FAILING_DOWN, server)

    assert result.status == Status.failed, result.error or result.summary
    [finding] = result.findings
    assert finding.rule == "downgrade-fails" and finding.blocking
    assert "failed at revision 0002_restock" in finding.title
    assert "restock_below is still read by the notifier" in finding.title


def test_a_round_trip_that_changes_the_schema_names_the_table_and_index(tmp_path: Path, server):
    result = run_stage(tmp_path, LOSSY_DOWN, server, down="{python} -m alembic downgrade -1")

    assert result.status == Status.failed, result.error or result.summary
    assert [f.evidence for f in result.findings] == ["table items: index items_name: missing"]
    assert "differs from the schema after the first up" in result.findings[0].title


def test_a_step_over_the_budget_is_a_finding(tmp_path: Path):
    result = run_stage(tmp_path, HEALTHY_DOWN, None, budget_s=0.001)

    assert result.status == Status.failed
    assert {f.location for f in result.findings} == {"up", "down", "up again"}
    assert "over the budget of 0.001 s (migrations.budget_s)" in result.findings[0].title


def test_a_migration_tool_that_cannot_start_is_an_error(tmp_path: Path, server):
    result = run_stage(tmp_path, HEALTHY_DOWN, server, up="{python} -m no_such_migration_tool upgrade head")

    assert result.status == Status.error
    assert "could not start or failed before naming a revision" in (result.error or "")
    assert "No module named no_such_migration_tool" in (result.error or "")


def test_commands_that_ignore_the_scratch_database_are_an_error(tmp_path: Path):
    result = run_stage(tmp_path, HEALTHY_DOWN, None, env={"DATABASE_URL": f"sqlite:///{tmp_path / 'other.db'}"})

    assert result.status == Status.error
    assert "left the scratch database" in (result.error or "") and "{database_url}" in (result.error or "")
