"""The verdict as a Slack Block Kit message: header, summary, top reasons, defects, waivers, the report link.

Pure: every value escaped for Slack's mrkdwn (never a mention or a link of its own) and every string redacted.
"""

from __future__ import annotations

import re
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.models import Decision, Reason, Verdict
from releasegate.redact import redact
from releasegate.report import utc

EMOJI = {Decision.GO: ":white_check_mark:", Decision.NO_GO: ":no_entry:", Decision.INCONCLUSIVE: ":warning:"}
TITLE = {Decision.GO: "GO", Decision.NO_GO: "NO-GO",
         Decision.INCONCLUSIVE: "INCONCLUSIVE — the gate could not decide"}
ADVICE = {
    Decision.GO: "Every required stage produced evidence and nothing blocks.",
    Decision.NO_GO: "The evidence is complete and something blocks: fix the service.",
    Decision.INCONCLUSIVE: "Fix the gate's inputs (a stage errored or produced no evidence), "
                           "not necessarily the service.",
}


def build_message(ctx: RunContext, verdict: Verdict, report_link: str, *,
                  max_reasons: int = 5) -> dict[str, Any]:
    """Block Kit message with a plain-text fallback; every string redacted."""
    decision = verdict.decision
    reasons = sorted(verdict.reasons, key=lambda r: -r.severity.rank)
    blocks = [_header(ctx, decision, len(verdict.waivers)), _summary(ctx, decision, len(reasons))]
    if reasons:
        blocks.append(_reasons_block(reasons, max_reasons))
    if verdict.defects:
        blocks.append(_defects_block(verdict))
    if verdict.waivers:
        blocks.append(_waivers_block(verdict))
    blocks += [_link_block(report_link), _context(ctx, verdict)]
    return redact_payload({"text": fallback_text(ctx, verdict, report_link), "blocks": blocks})


def fallback_text(ctx: RunContext, verdict: Verdict, report_link: str) -> str:
    """The notification text (Slack reads it as mrkdwn): every value escaped."""
    count = len(verdict.reasons)
    return (f"{TITLE[verdict.decision]}: {_escape(ctx.service)}@{_escape(ctx.version)} — {count} reason(s) — "
            f"report: {_escape(report_link)} — run {_escape(ctx.run_id)}")


def format_reason(reason: Reason, limit: int = 300) -> str:
    """'stage: message (value 312 vs threshold 250)' in Slack mrkdwn."""
    message = _escape(_clip(reason.message, limit))
    numbers = ""
    if reason.value is not None or reason.threshold is not None:
        numbers = f" (value {_num(reason.value)} vs threshold {_num(reason.threshold)})"
    return f"*{_escape(reason.stage)}*: {message}{numbers}"


def redact_payload(value: Any) -> Any:
    """Every string inside a payload, redacted."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_payload(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_payload(v) for v in value]
    return value


def _header(ctx: RunContext, decision: Decision, waivers: int = 0) -> dict:
    with_waivers = f" (with {waivers} waiver{'s' if waivers != 1 else ''})" if waivers else ""
    text = _clip(f"{EMOJI[decision]} {TITLE[decision]}{with_waivers}: {_escape(ctx.service)}@{_escape(ctx.version)}",
                 150)
    return {"type": "header", "text": {"type": "plain_text", "text": text, "emoji": True}}


def _summary(ctx: RunContext, decision: Decision, count: int) -> dict:
    text = (f"*{_escape(ctx.service)}@{_escape(ctx.version)}* — *{TITLE[decision]}*\n{ADVICE[decision]}"
            f"\n{count} reason(s).")
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _reasons_block(reasons: list[Reason], max_reasons: int) -> dict:
    lines = [f"• {format_reason(r)}" for r in reasons[:max_reasons]]
    hidden = len(reasons) - len(lines)
    if hidden > 0:
        lines.append(f"…and {hidden} more reason(s) in the report")
    text = _clip("*Top reasons*\n" + "\n".join(lines), 3000)
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _defects_block(verdict: Verdict, shown: int = 5) -> dict:
    """New defects (new, reopened) apart from old ones (recurring, waived), as the release train asks."""
    new, old = verdict.new_defects, verdict.old_defects
    fixed = [d for d in verdict.defects if d.state == "fixed"]
    lines = [f"*Defects*: {len(new)} new, {len(old)} still open, {len(fixed)} fixed"]
    lines += [f"• :new: {_escape(_clip(d.title, 200))}" + (" _(reopened)_" if d.state == "reopened" else "")
              for d in new[:shown]]
    if len(new) > shown:
        lines.append(f"…and {len(new) - shown} more new defect(s) in the report")
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 3000)}}


def _waivers_block(verdict: Verdict) -> dict:
    lines = ["*Waived* (documented exceptions)"]
    lines += [f"• #{w.id} {_escape(_clip(w.title or w.fingerprint, 150))} — approved by {_escape(w.approver)}, "
              f"expires {w.expires_on}: {_escape(_clip(w.reason, 200))}" for w in verdict.waivers]
    return {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), 3000)}}


def _link_block(report_link: str) -> dict:
    """A link only for an http(s) URL that cannot end Slack's <url|label> early; anything else as text."""
    if report_link.startswith(("http://", "https://")) and not _LINK_BREAKERS.search(report_link):
        text = f"<{_escape(report_link)}|Open the report>"
    else:
        text = f"Report: `{_escape(report_link)}`"
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


_LINK_BREAKERS = re.compile(r"[\s<>|`]")


def _context(ctx: RunContext, verdict: Verdict) -> dict:
    text = f"run `{_escape(ctx.run_id)}` · decided {utc(verdict.decided_at):%Y-%m-%d %H:%M UTC}"
    if verdict.advisory_data is not None:
        text += f" · advisory data: {_escape(_clip(verdict.advisory_data.describe(), 300))}"
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _escape(text: str) -> str:
    """Slack's control characters as entities, so text never becomes a mention (<!channel>), a link or a
    user reference; applied to every value in the message."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:g}"
