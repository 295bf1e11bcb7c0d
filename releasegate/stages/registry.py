"""Every stage the gate knows, in one place: what it is called, what kind of evidence it gives, whether it needs
the running service, whether it measures (and so runs alone), which part of the policy plans it and which module
runs it. The pipeline, the DAG's planning tasks and docs/stages.md read this table; adding a stage is one module
(with a ``run_planned`` function) and one entry here (docs/stages.md shows how).

Every stage runs through one signature::

    def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult

A stage that could not run raises ``StageError`` (or returns an ``error`` result naming why); a finding is data.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from releasegate.context import RunContext
    from releasegate.domain.models import StageResult
    from releasegate.environment import Environment
    from releasegate.policy import Policy


@dataclass(frozen=True)
class Planned:
    """A stage as one run plans it: its name in that run (``semgrep``, ``pytest[unit]``) and the policy entry."""

    name: str
    required: bool
    stage: StageSpec
    entry: Any = None  # the policy's section (or, for a stage planned once per entry, that entry)


class Stage(Protocol):
    """What the gate needs to know of a stage."""

    name: str            # its name in results, reasons and the CLI (a family such as pytest: its prefix)
    kind: str            # the evidence it gives: suite, load, chaos, sast, dependencies, alerts...
    task_id: str         # its task in the release_gate DAG ("" for the DAG's generic tasks)
    needs_service: bool  # calls the provisioned service: runs after provision, before teardown, on its host
    measures: bool       # measures the service or the host: runs alone, after everything else that touches them

    def plan(self, policy: Policy) -> list[Planned]: ...

    def run(self, policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult: ...


@dataclass(frozen=True)
class StageSpec:
    """A registered stage (see ``Stage``): ``section`` is the dotted policy path that plans it, ``module`` the
    module whose ``run_planned`` runs it (a bare name is one under releasegate.stages). ``per_entry``: the section is a list and each
    entry is a stage of its own, named ``<name>[<entry name>]``."""

    name: str
    kind: str
    section: str
    module: str
    task_id: str = ""
    needs_service: bool = False
    measures: bool = False
    per_entry: bool = False
    summary: str = ""

    def plan(self, policy: Policy) -> list[Planned]:
        value: Any = policy
        for part in self.section.split("."):
            value = getattr(value, part, None)
            if value is None:
                return []
        if self.per_entry:
            return [Planned(f"{self.name}[{entry.name}]", getattr(entry, "required", True), self, entry)
                    for entry in value]
        return [Planned(self.name, getattr(value, "required", True), self, value)]

    def run(self, policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
        module = importlib.import_module(self.module if "." in self.module else f"releasegate.stages.{self.module}")
        result: StageResult = module.run_planned(policy, ctx, env, planned)
        return result


# In the order a run in one process (`releasegate run`) takes them; the DAG orders them by what they need.
STAGES: tuple[StageSpec, ...] = (
    StageSpec("pytest", "suite", "suites", "pytest_suites", task_id="run_suite", needs_service=True, per_entry=True,
              summary="each pytest suite (JUnit), failures rerun to tell flaky from real"),
    StageSpec("locust", "load", "load", "locust_load", task_id="load_test", needs_service=True, measures=True,
              summary="Locust load, stress or soak profiles against latency, error-rate and throughput budgets"),
    StageSpec("chaos", "chaos", "chaos", "chaos", task_id="chaos", needs_service=True, measures=True,
              summary="Chaos Toolkit experiments: the steady state holds while faults are injected"),
    StageSpec("dast", "dast", "dast", "dast", needs_service=True, measures=True,
              summary="Schemathesis from the OpenAPI document: server errors, schema breaks, auth the service ignores"),
    StageSpec("authz", "authz", "authz", "authz", needs_service=True, measures=True,
              summary="the authorization matrix: each endpoint x caller (anonymous, user, admin, forged, expired) "
                      "gets its status class"),
    StageSpec("semgrep", "sast", "scans.semgrep", "semgrep", task_id="scan_semgrep",
              summary="Semgrep with local rules over the service's source"),
    StageSpec("pip-audit", "dependencies", "scans.pip_audit", "pip_audit", task_id="scan_pip_audit",
              summary="pip-audit of pinned requirements against an OSV endpoint or advisory data"),
    StageSpec("credentials", "secret", "scans.credentials", "secrets_scan",
              summary="detect-secrets over the source: file, line and kind of each secret (never its value); "
                      "known fixtures allow-listed"),
    StageSpec("alerts", "alerts", "alerts", "alerts", task_id="alert_thresholds",
              summary="promtool rule tests, amtool routes and the alert budgets cross-checked"),
    StageSpec("migrations", "migrations", "migrations", "migrations",
              summary="migrations up, down and up again on a scratch database; the schema must survive the round trip"),
    StageSpec("messaging", "messaging", "messaging", "messaging", needs_service=True, measures=True,
              summary="after the load: the named queues drain within the limit and the dead-letter queues stay empty"),
)


def planned(policy: Policy) -> list[Planned]:
    """Every stage the policy plans, in registry order."""
    return [p for stage in STAGES for p in stage.plan(policy)]


def find(policy: Policy, name: str) -> Planned:
    """The planned stage called ``name``; KeyError naming what the policy plans."""
    for plan in planned(policy):
        if plan.name == name:
            return plan
    known = ", ".join(p.name for p in planned(policy)) or "nothing"
    raise KeyError(f"unknown stage {name!r}; the policy plans: {known}")


def kind_of(name: str) -> str:
    """The kind of the stage a result's name belongs to (``pytest[unit]`` is a suite)."""
    family = name.split("[", 1)[0]
    return next((s.kind for s in STAGES if s.name == family), "other")


def stage_table() -> str:
    """The Markdown table docs/stages.md carries (a test keeps the two equal)."""
    rows = ["| stage | kind | policy section | DAG task | needs the service | measures (runs alone) | what it checks |",
            "|---|---|---|---|---|---|---|"]
    for s in STAGES:
        name = f"`{s.name}[<suite>]`" if s.per_entry else f"`{s.name}`"
        task = f"`{s.task_id}`" if s.task_id else ("`measure` (mapped)" if s.measures else "`run_check` (mapped)")
        rows.append(f"| {name} | {s.kind} | `{s.section}` | {task} | {'yes' if s.needs_service else 'no'} | "
                    f"{'yes' if s.measures else 'no'} | {s.summary} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":  # python -m releasegate.stages.registry: the table for docs/stages.md
    print(stage_table(), end="")
