"""A run observes defects at its start: a late retry of an older run cannot fix what a newer run saw.

Two runs of one service on a tiny real project: the older run (1.0, its test passes) starts first, the newer run
(1.1, the same test fails) starts, runs and concludes; then the older run's stage runs and concludes, as a retried
task does. The newer run's defect stays open.
"""

from __future__ import annotations

from pathlib import Path

from releasegate import pipeline
from releasegate.records import store

POLICY = """\
service: clocked
source: {path: "releases/{version}"}
suites:
  - {name: unit, kind: unit, paths: [tests.py]}
"""


def _release(root: Path, version: str, total: int) -> None:
    folder = root / "releases" / version
    folder.mkdir(parents=True)
    (folder / "tests.py").write_text(f"def test_total():\n    assert {total} == 3\n")


def test_late_older_run_does_not_fix_a_newer_runs_defect(tmp_path: Path, cli_db: str) -> None:
    _release(tmp_path, "1.0", 3)
    _release(tmp_path, "1.1", 4)
    policy = tmp_path / "gate.yaml"
    policy.write_text(POLICY)

    older = pipeline.begin(policy, "1.0")
    newer = pipeline.begin(policy, "1.1")
    assert older.started < newer.started

    assert pipeline.run_stage(newer, "pytest[unit]", None).status.value == "failed"
    assert pipeline.conclude(newer).verdict.decision.value == "NO_GO"

    assert pipeline.run_stage(older, "pytest[unit]", None).status.value == "passed"
    changes = pipeline.conclude(older).verdict.defects

    with store.unit_of_work() as uow:
        defects = uow.defects.for_service("clocked")
    assert [(d["state"], d["last_run_id"]) for d in defects] == [("new", newer.run_id)]
    assert changes == []


def test_a_newer_run_still_fixes_an_older_runs_defect(tmp_path: Path, cli_db: str) -> None:
    _release(tmp_path, "1.0", 4)
    _release(tmp_path, "1.1", 3)
    policy = tmp_path / "gate.yaml"
    policy.write_text(POLICY)

    older = pipeline.begin(policy, "1.0")
    pipeline.run_stage(older, "pytest[unit]", None)
    pipeline.conclude(older)
    newer = pipeline.begin(policy, "1.1")
    pipeline.run_stage(newer, "pytest[unit]", None)
    changes = pipeline.conclude(newer).verdict.defects

    with store.unit_of_work() as uow:
        defects = uow.defects.for_service("clocked")
    assert [(d["state"], d["changed_run_id"]) for d in defects] == [("fixed", newer.run_id)]
    assert [c.state for c in changes] == ["fixed"]
