"""A run's outcome as the CLI, the DAG's `verdict` task and Slack read it: the verdict and where its evidence is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from releasegate.context import RunContext
from releasegate.domain.models import Decision, Verdict
from releasegate.redact import redact_data


@dataclass
class Outcome:
    run_id: str
    service: str
    version: str
    verdict: Verdict
    report: str
    evidence_dir: str
    notification: str = ""
    extra: dict = field(default_factory=dict)
    recorded: bool = True  # whether the gate database holds this verdict

    def as_json(self) -> dict:
        return {"decision": self.verdict.decision.value, "run_id": self.run_id, "service": self.service,
                "version": self.version, "report": self.report, "evidence_dir": self.evidence_dir,
                "notification": self.notification, "decided_at": self.verdict.decided_at.isoformat(),
                "reasons": [r.model_dump(mode="json", exclude_none=True) for r in self.verdict.reasons],
                "waivers": [w.model_dump(mode="json") for w in self.verdict.waivers],
                "defects": [d.model_dump(mode="json") for d in self.verdict.defects],
                "advisory_data": (self.verdict.advisory_data.model_dump(mode="json")
                                  if self.verdict.advisory_data else None),
                "approval": self.verdict.approval.model_dump(mode="json") if self.verdict.approval else None}


def load_outcome(ctx: RunContext) -> Outcome:
    data = json.loads((ctx.evidence / "verdict.json").read_text(encoding="utf-8"))
    verdict = Verdict(decision=Decision(data["decision"]), reasons=data["reasons"], waivers=data["waivers"],
                      defects=data["defects"], decided_at=datetime.fromisoformat(data["decided_at"]),
                      advisory_data=data.get("advisory_data"), approval=data.get("approval"))
    return Outcome(ctx.run_id, ctx.service, ctx.version, verdict, data["report"], ctx.evidence_dir)


def verdict_json(outcome: Outcome) -> str:
    return json.dumps(redact_data(outcome.as_json()), indent=2)
