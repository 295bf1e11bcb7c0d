"""A task's ceiling against what the policy asks for (docs/decisions/0016): the DAG gives every stage task one
`execution_timeout`, fixed when the DAG is parsed; a run's policy, read when the run starts, may not allow a stage
longer than that: the policy's own timeouts, not Airflow's, must be what stops a tool (so the cause is named).
What a stage is allowed is the sum of its section's `*timeout_s` and `*duration_s` values, each counted once
(a per-experiment timeout is not multiplied): an estimate that catches a policy at odds with the ceiling, while
the ceiling itself stays the backstop."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import BaseModel

from releasegate.policy import Policy

SUFFIXES = ("timeout_s", "duration_s")


def declared_seconds(entry: Any) -> float:
    """The seconds a policy section (or list entry) allows its tools, summed over every nested value."""
    if isinstance(entry, BaseModel):
        return sum(_field_seconds(name, getattr(entry, name)) for name in type(entry).model_fields)
    if isinstance(entry, list | tuple):
        return sum(declared_seconds(item) for item in entry)
    return 0.0


def over_ceiling(policy: Policy, ceiling: timedelta) -> list[str]:
    """A message per planned stage whose declared time exceeds the ceiling, with how to fix either side."""
    from releasegate.stages import registry

    limit = ceiling.total_seconds()
    return [f"{p.name}: the policy allows its tools {declared_seconds(p.entry):g} s in all, more than the task's "
            f"execution_timeout of {limit:g} s — lower the stage's timeouts or raise "
            f"RELEASEGATE_STAGE_TIMEOUT_MINUTES where the DAG is parsed"
            for p in registry.planned(policy) if declared_seconds(p.entry) > limit]


def _field_seconds(name: str, value: Any) -> float:
    if name.endswith(SUFFIXES) and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return declared_seconds(value)
