"""Escaping by destination: hostile names stay text in Slack mrkdwn and in results.md (rendered by a real
Markdown renderer), never a mention, a link or live HTML."""

import json
import re
from collections import Counter

import pytest
from markdown_it import MarkdownIt

from releasegate.domain.models import (
    AppliedWaiver,
    Decision,
    DefectChange,
    Finding,
    Reason,
    Severity,
    StageResult,
    Status,
    Verdict,
)
from releasegate.notify.slack import build_message, build_thread
from releasegate.report import compile_report, md_cell
from tests.support import builders
from tests.support.builders import T0, run_context, stage_result

SAFE_LINK = "https://gate.example/reports/shop/1.4.2/rg-1/report.html"
HOSTILE = [
    "<!channel> deploy now",
    "<!here|here> & <!everyone>",
    "<@U024BE7LH> approved",
    "<https://evil.example|click for the report>",
    "[click](https://evil.example) ![pixel](https://evil.example/p.png)",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "<https://evil.example> and <mailto:x@evil.example>",
    "&lt;!channel&gt; &amp; &#60;b&#62;",
    "`code` *bold* _under_ ~strike~ | pipe \\ backslash",
    "line\nbreak\n# heading\n> quote\n- item",
    "see http://evil.example and www.evil.example",
    "[ref]: https://evil.example",
]


def hostile_verdict(names: list[str] = HOSTILE) -> Verdict:
    reasons = [Reason(stage=f"pytest[{i}]", message=text, severity=Severity.high, fingerprint=f"{i:032x}")
               for i, text in enumerate(names)]
    defects = [DefectChange(fingerprint=f"{i:032x}", title=text, state="new") for i, text in enumerate(names)]
    waivers = [AppliedWaiver(id=1, fingerprint="a" * 32, reason=names[0], approver=names[2],
                             requested_by=names[5], expires_on="2025-04-01", title=names[4])]
    return builders.verdict(Decision.NO_GO, reasons, defects=defects, waivers=waivers)


@pytest.fixture
def ctx(tmp_path):
    return run_context(tmp_path, version="1.4.2<!channel>&<@U1>")


# --- Slack -------------------------------------------------------------------------------------------------------

def slack_controls(payload: dict) -> list[str]:
    """Every <...> sequence Slack would interpret, in every string of the payload."""
    return re.findall(r"<[^<>]*>", json.dumps(payload, ensure_ascii=False))


@pytest.mark.parametrize("link", [SAFE_LINK, "https://gate.example/x|<!channel>", "/evidence/<!channel>/report.html",
                                  "https://gate.example/a b>c", "javascript:<!here>"])
def test_slack_payload_has_no_mention_or_foreign_link_anywhere(ctx, link):
    payload = build_message(ctx, hostile_verdict(), link, run_link=link)
    thread = build_thread(ctx, hostile_verdict(), link, max_reasons=len(HOSTILE), max_defects=len(HOSTILE))
    text = json.dumps([payload, thread], ensure_ascii=False)

    assert "<!" not in text and "<@" not in text
    expected = [f"<{SAFE_LINK}|Open the report>", f"<{SAFE_LINK}|Open the Airflow run>"] if link == SAFE_LINK else []
    assert slack_controls(payload) == expected
    assert slack_controls(thread) == []                           # everything shown: no "see the report" link
    assert "&lt;!channel&gt;" in payload["text"]                 # the version in the fallback text
    assert "1.4.2&lt;!channel&gt;&amp;&lt;@U1&gt;" in text
    assert "&amp;lt;!channel&amp;gt;" in text                    # an entity in a name stays literal text


def test_the_link_block_escapes_an_ampersand_in_the_url(ctx):
    link = "https://gate.example/report.html?run=1&service=shop"
    payload = build_message(ctx, Verdict(decision=Decision.GO, decided_at=T0), link)

    assert "<https://gate.example/report.html?run=1&amp;service=shop|Open the report>" in json.dumps(payload)


# --- results.md --------------------------------------------------------------------------------------------------

def hostile_results(names: list[str]) -> list[StageResult]:
    findings = [Finding(kind="test", rule=text, severity=Severity.high, title=text, location=text,
                        fingerprint=f"{i:032x}") for i, text in enumerate(names)]
    return [stage_result("pytest[unit]", "suite", Status.failed, seconds=1, summary=names[5], findings=findings)]


def rendered_results_md(ctx, names: list[str] = HOSTILE) -> tuple[str, str]:
    verdict = hostile_verdict(names)
    paths = compile_report(ctx, "sha256:abc", hostile_results(names), verdict, tool_versions={},
                           defects=[{"fingerprint": f"{i:032x}", "title": t, "owner": t, "state": "new",
                                     "severity": "high", "remediation": t} for i, t in enumerate(names)])
    source = paths.markdown.read_text()
    return source, MarkdownIt("commonmark", {"html": True}).enable("table").render(source)


def tags(html: str) -> Counter:
    return Counter(re.findall(r"<([a-z][a-z0-9]*)", html))


def test_results_md_renders_hostile_names_as_text_only(ctx, tmp_path):
    benign_ctx = ctx.model_copy(update={"version": "1.4.2", "evidence_dir": str(tmp_path / "benign")})
    _, benign = rendered_results_md(benign_ctx, [f"name {i}" for i in range(len(HOSTILE))])
    source, html = rendered_results_md(ctx)

    assert tags(html) == tags(benign)                             # the names added no element at all
    assert "<a " not in html and "<img" not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "shop@1.4.2&lt;!channel&gt;&amp;&lt;@U1&gt;" in html   # the version in the title
    assert "[click](https://evil.example)" in html                # literal text, not a link
    assert "&amp;lt;!channel&amp;gt;" in html                     # an entity in a name is shown, not decoded


def test_results_md_tables_keep_their_columns(ctx):
    source, html = rendered_results_md(ctx)
    log_rows = [line for line in source.splitlines() if line.startswith("| 2025-")]

    assert log_rows and all(len(re.split(r"(?<!\\)\|", row)) == 8 for row in log_rows)
    assert "<table>" in html


@pytest.mark.parametrize(("value", "rendered"), [
    ("tests/unit/test_pricing.py::test_bulk_discount_tiers[10-5] failed",
     "tests/unit/test_pricing.py::test_bulk_discount_tiers[10-5] failed"),
    ("__init__ _x_ a_b *y*", "__init__ _x_ a_b *y*"),
    ("a | b", "a | b"),
    ("http://evil.example", "http://evil.example"),
])
def test_md_cell_text_reads_back_unchanged(value, rendered):
    html = MarkdownIt("commonmark").render(md_cell(value))
    assert html == f"<p>{rendered}</p>\n"


def test_identifiers_stay_readable_in_the_markdown_source():
    assert md_cell("tests/unit/test_pricing.py::test_bulk_discount_tiers") == \
        "tests/unit/test_pricing.py::test_bulk_discount_tiers"
    assert md_cell("release_gate__manual__2026-11-24T14:58:32+00:00") == \
        "release_gate__manual__2026-11-24T14:58:32+00:00"
