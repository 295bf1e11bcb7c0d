"""build_message() and build_thread(): the verdict message that tells people what to do, and its thread."""

import json

import pytest

from releasegate.domain.models import Decision, DefectChange, Reason, Severity
from releasegate.notify.slack import build_message, build_thread
from tests.support.builders import run_context, verdict

CANARY = "xoxb-canary-123456-abcdef"
LINK = "https://gate.example/reports/shop/1.4.2/rg-1/report.html"


@pytest.fixture
def ctx(tmp_path):
    return run_context(tmp_path)


def reason(i, severity=Severity.high, **kw):
    return Reason(stage=f"stage{i}", message=f"problem {i}", severity=severity, **kw)


def header_text(message):
    return message["blocks"][0]["text"]["text"]


def all_text(message):
    return json.dumps(message, ensure_ascii=False)


def test_no_go_header_and_top_reason_with_numbers(ctx):
    message = build_message(ctx, verdict(Decision.NO_GO, [
        Reason(stage="locust", message="p95 over budget", severity=Severity.high, value=312, threshold=250)]), LINK)

    assert message["blocks"][0]["type"] == "header"
    assert ":no_entry:" in header_text(message) and "NO-GO" in header_text(message)
    assert "shop@1.4.2" in header_text(message)
    assert "First: *locust*: p95 over budget (value 312 vs threshold 250)" in all_text(message)
    assert f"<{LINK}|Open the report>" in all_text(message)
    assert "Open the Airflow run" not in all_text(message)          # no run known: no link
    assert ctx.run_id in all_text(message)
    assert "NO-GO" in message["text"] and LINK in message["text"]


def test_inconclusive_is_visibly_distinct_from_no_go(ctx):
    inconclusive = build_message(ctx, verdict(Decision.INCONCLUSIVE, [reason(1)]), LINK)
    no_go = build_message(ctx, verdict(Decision.NO_GO, [reason(1)]), LINK)

    assert ":warning:" in header_text(inconclusive)
    assert "INCONCLUSIVE — the gate could not decide" in header_text(inconclusive)
    assert ":warning:" not in header_text(no_go) and "INCONCLUSIVE" not in all_text(no_go)
    assert "gate's inputs" in all_text(inconclusive)


def test_go_message(ctx):
    message = build_message(ctx, verdict(Decision.GO), LINK)

    assert ":white_check_mark:" in header_text(message) and "GO" in header_text(message)
    assert "First:" not in all_text(message) and "in the thread" not in all_text(message)


def test_reasons_truncated_most_severe_first(ctx):
    reasons = [reason(i) for i in range(7)] + [reason(99, Severity.critical)]

    thread = build_thread(ctx, verdict(Decision.NO_GO, reasons), LINK, max_reasons=3)

    block = thread["blocks"][0]["text"]["text"]
    assert block.startswith("*Reasons* (8)") and block.count("•") == 3
    assert block.index("stage99") < block.index("stage0")
    assert f"…and 5 more reason(s) — see <{LINK}|the report>" in block


def test_canary_secret_in_a_reason_is_redacted(ctx):
    message = build_message(ctx, verdict(Decision.NO_GO, [
        Reason(stage="pytest[unit]", message=f"login failed with token {CANARY}", severity=Severity.high)]), LINK)

    assert CANARY not in all_text(message)
    assert "[REDACTED]" in all_text(message)


def test_mrkdwn_control_characters_escaped(ctx):
    tricky = Reason(stage="s", message="a < b & c > d", severity=Severity.low)

    message = build_message(ctx, verdict(Decision.NO_GO, [tricky]), LINK)

    assert "a &lt; b &amp; c &gt; d" in all_text(message)


def test_local_report_path_is_shown_as_text(ctx):
    message = build_message(ctx, verdict(Decision.GO), "/var/gate/evidence/report.html")

    assert "Report: `/var/gate/evidence/report.html`" in all_text(message)


def test_payload_is_json_serialisable_and_within_block_limits(ctx):
    long_reason = Reason(stage="s", message="x" * 5000, severity=Severity.high)

    message = build_message(ctx, verdict(Decision.NO_GO, [long_reason] * 5), LINK)
    thread = build_thread(ctx, verdict(Decision.NO_GO, [long_reason] * 40), LINK, max_reasons=40)

    json.dumps([message, thread])
    assert len(header_text(message)) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in message["blocks"] + thread["blocks"] if "text" in b)
    assert "more reason(s) — see" in thread["blocks"][0]["text"]["text"]   # cut whole, and said so


def test_the_run_link_is_there_when_known(ctx):
    run = "https://airflow.example/dags/release_gate/runs/manual__2026-12-01T10:00:00+00:00"

    message = build_message(ctx, verdict(Decision.GO), LINK, run_link=run)

    assert f"<{LINK}|Open the report> · <{run}|Open the Airflow run>" in all_text(message)


def test_the_thread_names_each_kind_of_defect_change_bounded(ctx):
    defects = [DefectChange(fingerprint=f"{i:032x}", title=f"{state} {i}", state=state, stage="semgrep")
               for state in ("new", "reopened", "fixed", "waived", "recurring") for i in range(7)]

    thread = build_thread(ctx, verdict(Decision.NO_GO, [reason(1)], defects=defects), LINK, max_defects=2)

    text = thread["blocks"][1]["text"]["text"]
    assert text.startswith("*Defect changes*: 7 new, 7 reopened, 7 fixed, 7 waived, 7 still open")
    for state in ("new", "reopened", "fixed", "waived"):
        assert f"• {state} 0 (semgrep)\n• {state} 1 (semgrep)\n…and 5 more {state} defect(s) — see <{LINK}|" in text
    assert "recurring 0" not in text                                 # still open: counted, not listed
