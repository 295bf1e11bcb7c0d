"""A stage a test registers: it asks the running service for its front page and passes when it answers 200.

It is what a new stage looks like: one module with a ``run_planned`` function, and one registry entry.
"""

from __future__ import annotations

import urllib.request

from releasegate.domain.models import StageResult, Status
from releasegate.stages.base import guarded, now


def run_planned(policy, ctx, env, planned) -> StageResult:
    def body(started) -> StageResult:
        with urllib.request.urlopen(env.base_url + "/", timeout=5) as answer:  # noqa: S310 - loopback service
            status = answer.status
        return StageResult(stage=planned.name, kind="probe", status=Status.passed if status == 200 else Status.failed,
                           required=planned.required, started=started, finished=now(), summary=f"{planned.name}: HTTP {status}")

    return guarded(planned.name, "probe", planned.required, body)
