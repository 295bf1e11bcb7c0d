"""A 200,000-case suite: streamed, tallied and stored in bulk, it gets the verdict and reasons it got when every case
was parsed into memory and judged there; every case reaches the gate database, once, also when stored again."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from persistence import UnitOfWork, engine_from_url
from persistence.migrate import ensure_schema
from persistence.tables import TestCaseRow
from releasegate.domain.models import Metric, StageResult, Status, TestCase
from releasegate.domain.verdict import ExpectedStage, decide
from releasegate.policy import Suite
from releasegate.stages.junit import parse_junit
from releasegate.stages.pytest_suites import _finding, _result, read_cases
from releasegate.stages.suite_tally import read_spool

pytestmark = pytest.mark.slow
CASES = 200_000
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SUITE = Suite(name="unit")


def write_junit(path: Path) -> None:
    """2 % failing, 0.5 % erroring, 1 % skipped (with a reason), across 400 modules."""
    with path.open("w", encoding="utf-8") as out:
        out.write('<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest">\n')
        for i in range(CASES):
            node = f"tests/unit/test_m{i % 400}.py::test_{i}[a\tb-{i % 3}]"
            body = ('<failure message="assert 1 == 2">E   assert 1 == 2</failure>' if i % 50 == 0 else
                    '<error message="fixture db failed">ConnectionError</error>' if i % 200 == 7 else
                    '<skipped message="needs linux">skip</skipped>' if i % 100 == 3 else "")
            out.write(f'<testcase classname="c" name="t" time="0.002"><properties><property name="nodeid" '
                      f'value="{node.replace(chr(9), "&#9;")}"/></properties>{body}</testcase>\n')
        out.write("</testsuite></testsuites>\n")


def judged_in_memory(xml: Path) -> StageResult:
    """How a suite was judged before streaming: every case a TestCase, the stage built from the full list."""
    cases = list({c.node_id: c for c in parse_junit(xml.read_text(encoding="utf-8"))}.values())
    counts = {k: sum(c.outcome == k for c in cases) for k in ("passed", "failed", "error", "skipped", "flaky")}
    findings = [_finding(SUITE, c) for c in cases if c.outcome in ("failed", "error", "flaky")]
    return StageResult(stage="pytest[unit]", kind="unit", status=Status.failed, started=T0, finished=T0,
                       findings=findings, metrics=[Metric(name=f"tests_{k}", value=v) for k, v in counts.items()])


def streamed(xml: Path, folder: Path) -> tuple[StageResult, list[TestCase]]:
    tally = read_cases(xml, folder / "cases-1.tsv")
    cases = tally.cases()
    return _result(None, SUITE, None, T0, tally, cases, [], folder, [], []), cases


def test_a_200k_case_suite_gives_the_same_verdict_and_reasons_and_stores_every_case(tmp_path, db_url):
    xml = tmp_path / "junit.xml"
    write_junit(xml)
    before = judged_in_memory(xml)

    result, held = streamed(xml, tmp_path)

    expected = [ExpectedStage("pytest[unit]")]
    old, new = decide([before], expected, T0), decide([result], expected, T0)
    assert new.decision == old.decision
    assert [r.model_dump() for r in new.reasons] == [r.model_dump() for r in old.reasons]
    assert {m.name: m.value for m in result.metrics} == {m.name: m.value for m in before.metrics}
    assert sum(g.total for g in result.test_groups) == CASES and len(result.test_groups) == 400
    assert len(held) < 6_000  # the failing ones and a sample, never all 200,000

    ensure_schema(db_url)
    engine = engine_from_url(db_url)
    for _ in range(2):  # stored again (a retried task): the same rows, not new ones
        with UnitOfWork(engine) as uow:
            uow.runs.upsert({"run_id": "r1", "service": "s", "version": "1", "policy_path": "p",
                             "policy_digest": "d", "evidence_dir": "", "started_at": T0, "status": "running"})
            uow.stages.upsert("r1", result.model_dump(mode="json", exclude={"test_groups"}),
                              cases=read_spool(Path(result.cases_file)))
            uow.commit()
    with UnitOfWork(engine) as uow:
        stored = uow.session.scalar(select(func.count()).select_from(TestCaseRow))
        odd = uow.session.scalar(select(TestCaseRow.outcome).where(
            TestCaseRow.node_id == "tests/unit/test_m4.py::test_4[a\tb-1]"))
    engine.dispose()
    assert stored == CASES
    assert odd == "passed"  # a tab in a node id survives the spool and COPY
