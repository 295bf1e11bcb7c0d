"""The `waivers` section: limits on the waivers granted for the service's findings."""

from __future__ import annotations

from pydantic import Field

from releasegate.domain.waiver_rules import DEFAULT_MAX_DAYS, LIMIT_MAX_DAYS
from releasegate.policy.spec import _Spec


class Waivers(_Spec):
    """Limits on the waivers granted for this service's findings (`releasegate waive`)."""

    max_days: int = Field(DEFAULT_MAX_DAYS, ge=1, le=LIMIT_MAX_DAYS, description="Longest a waiver may last: its expiry at most this many "
                                                        "days after the day it is granted (UTC).")
