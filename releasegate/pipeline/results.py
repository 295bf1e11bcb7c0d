"""Stage results of a run: what the policy plans, each result redacted and kept as `stages/<stage>.json`, and
read back (the latest per stage) when the run concludes."""

from __future__ import annotations

from collections.abc import Iterable

from releasegate.atomic import write_atomic
from releasegate.context import RunContext, safe_name
from releasegate.domain.models import StageResult
from releasegate.domain.verdict import ExpectedStage
from releasegate.pipeline.faults import PROVISION
from releasegate.policy import Policy, load_policy
from releasegate.redact import redact_data, remember_policy
from releasegate.stages import registry

# fields of a StageResult that identify rather than describe: never rewritten by redaction
IDENTIFIERS = frozenset({"stage", "kind", "status", "fingerprint", "sha256", "started", "finished", "severity",
                         "outcome", "operator", "unit"})



def policy_of(ctx: RunContext) -> Policy:
    policy = load_policy(ctx.policy_path)
    remember_policy(policy)
    return policy


def expected_stages(policy: Policy) -> list[ExpectedStage]:
    """Provisioning (when the policy starts the service), then every stage the policy plans (see the registry)."""
    stages = [ExpectedStage(PROVISION)] if policy.environment else []
    return stages + [ExpectedStage(p.name, p.required) for p in registry.planned(policy)]


def stage_names(policy: Policy) -> list[str]:
    return [s.name for s in expected_stages(policy) if s.name != PROVISION]


def redact_result(result: StageResult) -> StageResult:
    """The result with every descriptive text redacted (identifiers such as the stage name and fingerprints kept)."""
    return StageResult.model_validate(redact_data(result.model_dump(mode="json"), keep=IDENTIFIERS))


def write_result(ctx: RunContext, result: StageResult) -> None:
    write_atomic(ctx.evidence / "stages" / f"{safe_name(result.stage)}.json", result.model_dump_json(indent=2))


def load_results(ctx: RunContext) -> list[StageResult]:
    return read_results(ctx)[0]


def read_results(ctx: RunContext) -> tuple[list[StageResult], list[str]]:
    """The saved results in the order they ran, and a problem for each file that could not be read."""
    results, problems = [], []
    for path in sorted((ctx.evidence / "stages").glob("*.json")):
        if path.name.startswith("."):
            continue  # a temporary file of a write in progress (or one a crash left)
        try:
            results.append(StageResult.model_validate_json(path.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            problems.append(f"{path.name} could not be read ({type(exc).__name__})")
    return sorted(results, key=lambda r: (r.started, r.stage)), problems


def merge_results(saved: Iterable[StageResult], known: Iterable[StageResult]) -> list[StageResult]:
    """One result per stage: the latest of the saved ones and those this process holds (a result that could not
    be written to the evidence folder exists only in memory)."""
    by_stage: dict[str, StageResult] = {}
    for result in [*saved, *known]:
        current = by_stage.get(result.stage)
        if current is None or result.finished >= current.finished:
            by_stage[result.stage] = result
    return sorted(by_stage.values(), key=lambda r: (r.started, r.stage))
