"""The migrations stage's pure parts: what differs between two schemas, which revision a tool's output names, the
tool's own error line; and the messaging stage's judgement of its samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from releasegate.policy import Messaging, Migrations
from releasegate.stages.base import ToolRun
from releasegate.stages.messaging import judge
from releasegate.stages.migration_schema import schema_diff
from releasegate.stages.migrations import failing_revision, tool_said


def table(**parts: object) -> dict:
    base: dict = {"columns": {"id": {"type": "INTEGER", "nullable": False, "default": None}}, "primary_key": ["id"],
                  "indexes": {}, "unique": {}, "foreign_keys": {}, "checks": {}}
    return {**base, **parts}


def ran(stderr: str = "", stdout: str = "", returncode: int = 1) -> ToolRun:
    return ToolRun(["python", "-m", "alembic"], returncode, stdout, stderr, 0.4, log=Path("down.log"))


ALEMBIC_DOWN = """\
INFO  [alembic.runtime.migration] Context impl SQLiteImpl.
INFO  [alembic.runtime.migration] Will assume non-transactional DDL.
INFO  [alembic.runtime.migration] Running downgrade 0002_restock -> 0001_items, restock
Traceback (most recent call last):
  File "/srv/migrations/versions/0002_restock.py", line 17, in downgrade
    raise RuntimeError("restock_below is still read by the notifier")
RuntimeError: restock_below is still read by the notifier
"""
ALEMBIC_UP = "INFO  [alembic.runtime.migration] Running upgrade  -> 0001_items, items\n" \
             "INFO  [alembic.runtime.migration] Running upgrade 0001_items -> 0002_restock, restock\n"
DJANGO_DOWN = "Operations to perform:\n  Unapply all migrations: accounts\nRunning migrations:\n" \
              "  Unapplying accounts.0003_profile... OK\n  Unapplying accounts.0002_email...\n"


@pytest.mark.parametrize(("stderr", "stdout", "pattern", "revision"), [
    (ALEMBIC_DOWN, "", None, "0002_restock"),
    (ALEMBIC_UP, "", None, "0002_restock"),
    ("django.db.utils.OperationalError: no such column", DJANGO_DOWN, None, "accounts.0002_email"),
    ("Traceback ...\nsqlite3.OperationalError: no such table: x\n", "Applying 0001_items\nReverting 0002_stock\n",
     r"(?m)^(?:Applying|Reverting) (\S+)$", "0002_stock"),
    ("ModuleNotFoundError: No module named 'alembic'\n", "", None, None),
])
def test_the_revision_is_the_last_one_the_tool_named(stderr, stdout, pattern, revision):
    assert failing_revision(ran(stderr, stdout), pattern) == revision


def test_the_tool_said_is_its_exception_line_not_the_background_link():
    output = ALEMBIC_DOWN + "(Background on this error at: https://sqlalche.me/e/21/e3q8)\n"
    assert tool_said(ran(output)) == "RuntimeError: restock_below is still read by the notifier"


def test_schema_diff_names_the_table_and_what_changed():
    before = {"items": table(indexes={"items_name": {"column_names": ["name"], "unique": False}}),
              "stock": table()}
    after = {"items": table(columns={"id": {"type": "BIGINT", "nullable": False, "default": None},
                                     "sku": {"type": "TEXT", "nullable": True, "default": None}}),
             "audit": table()}

    assert schema_diff(before, after) == [
        "table stock: missing",
        "table audit: added",
        "table items: column sku: added",
        "table items: column id: type 'INTEGER' became 'BIGINT'",
        "table items: index items_name: missing",
    ]
    assert schema_diff(before, before) == []


def test_revision_pattern_needs_exactly_one_group():
    with pytest.raises(ValueError, match="exactly one group"):
        Migrations(up="x", down="y", revision_pattern=r"Applying \S+")


def test_messaging_findings_carry_the_counts():
    spec = Messaging(queues=["restock", "mail"], dead_letter_queues=["restock.dead"], drain_timeout_s=5)
    samples = [{"at_s": 0.0, "depths": {"restock": 9, "mail": 4}}, {"at_s": 5.0, "depths": {"restock": 0, "mail": 4}}]

    findings = judge(spec, samples, {"restock.dead": 3})

    assert [f.title.split(" — ")[0] for f in findings] == [
        "messaging: queue mail still holds 4 messages after 5.0 s (it held 4 when the check began; limit 5 s, "
        "messaging.drain_timeout_s)",
        "messaging: dead-letter queue restock.dead holds 3 messages (the policy allows none)",
    ]
    assert judge(spec, [{"at_s": 0.4, "depths": {"restock": 0, "mail": 0}}], {"restock.dead": 0}) == []


def test_job_counters_need_a_redis_broker(tmp_path):
    from releasegate.domain.errors import PolicyError
    from releasegate.policy import load_policy

    (tmp_path / "gate.yaml").write_text(
        "service: shop\nenvironment:\n  start: app {port}\n  health: {url: 'http://{host}:{port}/'}\n"
        "  broker: {kind: rabbitmq, url: 'amqp://guest:guest@127.0.0.1:5672/'}\n"
        "messaging:\n  queues: [mail]\n  jobs: [{name: mail, created: mail.created, completed: mail.done}]\n")
    with pytest.raises(PolicyError, match="messaging.jobs reads counters from Redis"):
        load_policy(tmp_path / "gate.yaml")
