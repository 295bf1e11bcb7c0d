"""The verdict as Slack Block Kit messages: the verdict message (header, summary, links to the report and the
Airflow run) and the reply in its thread (the reasons and the defect changes, each bounded: the first ones, then
"and M more — see the report"); and the note a re-run that changed the verdict adds to the thread.

Pure: every value escaped for Slack's mrkdwn (never a mention or a link of its own) and every string redacted.
"""

from __future__ import annotations

import re
from typing import Any

from releasegate.context import RunContext
from releasegate.domain.defect_lifecycle import DefectState
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


MAX_REASONS = 10          # reasons in the thread; the rest: "and M more — see the report"
MAX_DEFECTS = 5           # defects of each kind (new, reopened, fixed, waived) in the thread
SECTION_LIMIT = 3000      # Slack's limit on a section's text


def build_message(ctx: RunContext, verdict: Verdict, report_link: str, *, run_link: str | None = None) -> dict[str, Any]:
    """The verdict message, a Block Kit message with a plain-text fallback; every string redacted."""
    decision = verdict.decision
    reasons = sorted(verdict.reasons, key=lambda r: -r.severity.rank)
    blocks = [_header(ctx, decision, len(verdict.waivers)), _summary(ctx, verdict, reasons),
              _link_block(report_link, run_link), _context(ctx, verdict)]
    return redact_payload({"text": fallback_text(ctx, verdict, report_link), "blocks": blocks})


def build_thread(ctx: RunContext, verdict: Verdict, report_link: str, *, max_reasons: int = MAX_REASONS,
                 max_defects: int = MAX_DEFECTS) -> dict[str, Any]:
    """The reply in the verdict message's thread: every reason and defect change, bounded; strings redacted."""
    reasons = sorted(verdict.reasons, key=lambda r: -r.severity.rank)
    more = _see_report(report_link)
    blocks = [_section(f"*Reasons* ({len(reasons)})", [f"• {format_reason(r)}" for r in reasons], max_reasons,
                       "reason(s)", more) if reasons else _plain_section("*Reasons*: none.")]
    blocks.append(_defects_block(verdict, max_defects, more))
    if verdict.waivers:
        blocks.append(_waivers_block(verdict, max_defects, more))
    text = (f"{TITLE[verdict.decision]}: {_escape(ctx.service)}@{_escape(ctx.version)} — {len(reasons)} "
            f"reason(s), {_defect_counts(verdict)}")
    return redact_payload({"text": text, "blocks": blocks})


def change_note(ctx: RunContext, shown: str, verdict: Verdict) -> dict[str, Any]:
    """The thread note of a re-run whose verdict differs from the one the message showed."""
    before = TITLE[Decision(shown)] if shown in {d.value for d in Decision} else _escape(shown)
    text = (f":arrows_counterclockwise: Re-run of run `{_escape(ctx.run_id)}`: the verdict changed from "
            f"*{before}* to *{TITLE[verdict.decision]}* (decided {utc(verdict.decided_at):%Y-%m-%d %H:%M UTC}); "
            "the verdict message now shows the new verdict; its reasons follow.")
    return redact_payload({"text": text, "blocks": [_plain_section(text)]})


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


def _summary(ctx: RunContext, verdict: Verdict, reasons: list[Reason]) -> dict:
    decision = verdict.decision
    text = (f"*{_escape(ctx.service)}@{_escape(ctx.version)}* — *{TITLE[decision]}*\n{ADVICE[decision]}"
            f"\n{len(reasons)} reason(s); defects: {_defect_counts(verdict)}.")
    if reasons:
        text += f"\nFirst: {format_reason(reasons[0])}"
    if reasons or verdict.defects or verdict.waivers:
        text += "\nThe reasons and the defect changes are in the thread."
    return _plain_section(_clip(text, SECTION_LIMIT))


def _defect_counts(verdict: Verdict) -> str:
    count = {state: sum(1 for d in verdict.defects if d.state == state) for state in DefectState}
    return (f"{count[DefectState.new]} new, {count[DefectState.reopened]} reopened, {count[DefectState.fixed]} "
            f"fixed, {count[DefectState.waived]} waived, {count[DefectState.recurring]} still open")


def _defects_block(verdict: Verdict, shown: int, more: str) -> dict:
    """The defect changes by kind: new, reopened, fixed, waived (each bounded); still-open ones counted."""
    lines = [f"*Defect changes*: {_defect_counts(verdict)}"]
    for state, label in ((DefectState.new, ":new: new"), (DefectState.reopened, ":repeat: reopened"),
                         (DefectState.fixed, ":white_check_mark: fixed"), (DefectState.waived, ":zipper_mouth_face: waived")):
        defects = [d for d in verdict.defects if d.state == state]
        if not defects:
            continue
        items = [f"• {_escape(_clip(d.title, 200))}" + (f" ({_escape(d.stage)})" if d.stage else "")
                 for d in defects]
        lines.append(_bounded(f"_{label}_", items, shown, f"{state.value} defect(s)", more))
    return _plain_section(_clip("\n".join(lines), SECTION_LIMIT))


def _waivers_block(verdict: Verdict, shown: int, more: str) -> dict:
    items = [f"• #{w.id} {_escape(_clip(w.title or w.fingerprint, 150))} — approved by {_escape(w.approver)}, "
             f"expires {w.expires_on}: {_escape(_clip(w.reason, 200))}" for w in verdict.waivers]
    return _section("*Waived* (documented exceptions)", items, shown, "waiver(s)", more)


def _section(title: str, items: list[str], shown: int, what: str, more: str) -> dict:
    return _plain_section(_bounded(title, items, shown, what, more))


def _bounded(title: str, items: list[str], shown: int, what: str, more: str) -> str:
    """The title and the first ``shown`` items that fit a section, then "…and M more <what> — see the report"."""
    kept: list[str] = []
    size = len(title) + 200  # room for the "and M more" line
    for item in items[:shown]:
        if size + len(item) + 1 > SECTION_LIMIT:
            break
        kept.append(item)
        size += len(item) + 1
    lines = [title, *kept]
    if len(items) > len(kept):
        lines.append(f"…and {len(items) - len(kept)} more {what} — {more}")
    return _clip("\n".join(lines), SECTION_LIMIT)


def _see_report(report_link: str) -> str:
    return f"see <{_escape(report_link)}|the report>" if _linkable(report_link) else "see the report"


def _plain_section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _link_block(report_link: str, run_link: str | None = None) -> dict:
    """Links only for http(s) URLs that cannot end Slack's <url|label> early; a report path as text; no run link
    when the Airflow run is not known."""
    if _linkable(report_link):
        parts = [f"<{_escape(report_link)}|Open the report>"]
    else:
        parts = [f"Report: `{_escape(report_link)}`"]
    if run_link and _linkable(run_link):
        parts.append(f"<{_escape(run_link)}|Open the Airflow run>")
    return _plain_section(" · ".join(parts))


def _linkable(url: str) -> bool:
    return url.startswith(("http://", "https://")) and not _LINK_BREAKERS.search(url)


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
