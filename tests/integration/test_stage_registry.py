"""One way to add a stage: a module with ``run_planned`` and an entry in releasegate/stages/registry.py. The
pipeline plans, runs, saves and judges a registered stage like any other, and the DAG's planning tasks hand it
to the generic mapped task its flags choose."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from releasegate import pipeline
from releasegate.stages import registry
from tests.support.faults import tiny_policy

PROBE = registry.StageSpec("probe", "probe", "environment", "tests.support.stages.service_probe",
                           needs_service=True, summary="the service answers its front page")


@pytest.fixture
def with_probe(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "STAGES", (*registry.STAGES, PROBE))


def test_a_registered_stage_is_planned_run_saved_and_judged(with_probe, tmp_path: Path):
    outcome = pipeline.run_gate(tiny_policy(tmp_path), "1.0.0")

    assert outcome.verdict.decision.value == "GO", outcome.verdict.reasons
    saved = json.loads((Path(outcome.evidence_dir) / "stages" / "probe.json").read_text())
    assert (saved["stage"], saved["kind"], saved["status"]) == ("probe", "probe", "passed")
    assert saved["summary"] == "probe: HTTP 200"
    document = json.loads((Path(outcome.evidence_dir) / "evidence.json").read_text())
    assert [s["stage"] for s in document["stages"]] == ["provision", "pytest[unit]", "probe"]


def test_the_dag_plans_a_stage_without_a_task_of_its_own_into_the_generic_tasks(with_probe, tmp_path: Path):
    from releasegate.airflow_glue import planned

    ctx = pipeline.begin(tiny_policy(tmp_path), "1.0.0")
    as_task = ctx.model_dump(mode="json")

    assert planned(as_task, "suites") == ["pytest[unit]"]
    assert planned(as_task, "checks") == ["probe"]
    assert planned(as_task, "measures") == []
    measuring = registry.StageSpec("probe", "probe", "environment", PROBE.module, needs_service=True, measures=True)
    registry.STAGES = (*registry.STAGES[:-1], measuring)
    assert (planned(as_task, "checks"), planned(as_task, "measures")) == ([], ["probe"])


def test_a_stage_whose_policy_section_is_absent_is_not_planned(with_probe, tmp_path: Path):
    policy = pipeline.policy_of(pipeline.begin(tiny_policy(tmp_path, environment=False), "1.0.0"))

    assert [p.name for p in registry.planned(policy)] == ["pytest[unit]"]
    with pytest.raises(KeyError, match=r"unknown stage 'probe'; the policy plans: pytest\[unit\]"):
        registry.find(policy, "probe")


def test_every_registered_stage_has_its_module_and_runner_and_the_docs_table_is_current():
    import importlib

    for stage in registry.STAGES:
        module = importlib.import_module(f"releasegate.stages.{stage.module}")
        assert callable(module.run_planned), stage.name
    docs = (Path(__file__).resolve().parents[2] / "docs" / "stages.md").read_text(encoding="utf-8")
    assert registry.stage_table() in docs, "docs/stages.md: paste `python -m releasegate.stages.registry` output"
