"""The `chaos` section: Chaos Toolkit experiments."""

from __future__ import annotations

from pydantic import Field

from releasegate.domain.models import Severity
from releasegate.policy.spec import MAX_TIMEOUT_S, _Spec


class ChaosExperiment(_Spec):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", description="Short id, e.g. warehouse-down.")
    file: str = Field(description="Chaos Toolkit experiment (JSON or YAML), relative to the policy file.")
    required: bool = True
    severity: Severity = Field(Severity.high, description="Severity of a deviated steady state.")


class Chaos(_Spec):
    """Chaos Toolkit experiments run against the provisioned service and its dependencies."""

    experiments: list[ChaosExperiment] = Field(min_length=1)
    required: bool = True
    timeout_s: float = Field(300, gt=0, le=MAX_TIMEOUT_S, description="Per experiment.")
