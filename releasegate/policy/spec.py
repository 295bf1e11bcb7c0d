"""What every policy section shares: strict models, value types and the limits (docs/policy.md, "Limits")."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

Command = list[str] | str
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
Env = dict[EnvName, str]

# What a policy may be: hostile files are refused before they cost memory or time (docs/policy.md, "Limits").
MAX_POLICY_BYTES = 1024 * 1024    # 1 MiB
MAX_NESTING = 32                  # mappings and lists inside each other
MAX_NODES = 10_000                # values, keys, lists and mappings in all (a real policy has a few hundred)
MAX_PROBLEMS_SHOWN = 20
MAX_TIMEOUT_S = 86400.0           # every *timeout_s: one day at most
MAX_INTERVAL_S = 60.0             # every interval_s
MAX_COOLDOWN_S = 3600.0           # load.remeasure_cooldown_s
DEFAULT_MAX_ADVISORY_AGE_DAYS = 30  # scans.pip_audit.max_advisory_age_days: advisory feeds change daily
MAX_ADVISORY_AGE_DAYS = 3650


class _Spec(BaseModel):
    # finite numbers only: .inf / .nan in a policy are refused, never read as "wait forever"
    model_config = ConfigDict(extra="forbid", validate_default=True, allow_inf_nan=False)
