"""The alerts stage on the demo with the real promtool and amtool: budgets with alerts, escalation routes."""

import shutil
from pathlib import Path

import pytest
import yaml

from releasegate.context import open_run
from releasegate.domain.models import Severity, Status
from releasegate.policy import load_policy
from releasegate.stages import alerts

DEMO = Path(__file__).resolve().parents[2] / "include" / "demo"

pytestmark = pytest.mark.skipif(shutil.which("promtool") is None or shutil.which("amtool") is None,
                                reason="promtool and amtool are needed (scripts/install-system-deps.sh)")


def demo_run(tmp_path: Path, version: str, source: Path | None = None):
    """The demo policy (its alerts and load sections) pointed at a release by absolute path, and an open run."""
    policy = yaml.safe_load((DEMO / "gate.yaml").read_text())
    gate = {"service": "inventory", "source": {"path": str(source or DEMO / "releases" / "{version}")},
            "environment": {"start": "true", "health": {"url": "http://{host}:{port}/healthz"}},
            "load": {k: v for k, v in policy["load"].items() if k in ("locustfile", "budgets")},
            "alerts": policy["alerts"]}
    (tmp_path / "gate.yaml").write_text(yaml.safe_dump(gate, sort_keys=False))
    loaded = load_policy(tmp_path / "gate.yaml")
    return loaded, open_run(loaded, version)


def variant(tmp_path: Path, version: str, edits: dict[str, tuple[str, str]]) -> Path:
    """A copy of a demo release with text replaced in some of its files ({file: (old, new)})."""
    copy = tmp_path / "variant"
    shutil.copytree(DEMO / "releases" / version, copy, ignore=shutil.ignore_patterns("__pycache__"))
    for name, (old, new) in edits.items():
        text = (copy / name).read_text()
        assert old in text, f"{old!r} not in {name}"
        (copy / name).write_text(text.replace(old, new))
    return copy


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RELEASEGATE_HOME", str(tmp_path / "home"))


def test_the_healthy_release_passes_with_budget_alerts_and_routes_checked(tmp_path):
    policy, ctx = demo_run(tmp_path, "1.0.0")

    result = alerts.run(policy, ctx)

    assert result.status is Status.passed, (result.error, [f.title for f in result.findings])
    assert {m.name: m.value for m in result.metrics if m.name.startswith(("budgets", "routes"))} == {
        "budgets_mapped": 2, "budgets_with_alert": 2, "routes_checked": 2, "routes_misrouted": 0}
    generated = yaml.safe_load((ctx.evidence / "alerts" / "budget-tests.yml").read_text())
    assert len(generated["tests"]) == 4 and (ctx.evidence / "alerts" / generated["rule_files"][0]).is_file()
    assert any(a.name == "budget-tests.yml" for a in result.artifacts)


def test_the_release_that_dropped_its_latency_alert_is_caught(tmp_path):
    policy, ctx = demo_run(tmp_path, "1.1.0")

    result = alerts.run(policy, ctx)

    assert result.status is Status.failed, result.error
    assert [(f.rule, f.title) for f in result.findings] == [
        ("budget-alert-missing", "budget p95_ms has no alert: InventoryHighLatencyP95 not found in alerts/rules.yml")]
    assert result.findings[0].blocking and result.findings[0].severity is Severity.high


def test_a_misrouted_critical_alert_is_caught(tmp_path):
    source = variant(tmp_path, "1.0.0", {"alerts/alertmanager.yml": (
        "- matchers: ['severity=\"critical\"']\n      receiver: pager",
        "- matchers: ['severity=\"critical\"']\n      receiver: slack-releases")})
    policy, ctx = demo_run(tmp_path, "1.0.0", source)

    result = alerts.run(policy, ctx)

    assert result.status is Status.failed, result.error
    (found,) = result.findings
    assert found.rule == "alert-route" and found.blocking
    assert found.title == "alert {severity=critical, service=inventory} routes to slack-releases, expected pager"


def test_an_alertmanager_config_that_does_not_load_is_a_finding(tmp_path):
    source = variant(tmp_path, "1.0.0", {"alerts/alertmanager.yml": ("receiver: null-receiver", "receiver: nobody")})
    policy, ctx = demo_run(tmp_path, "1.0.0", source)

    result = alerts.run(policy, ctx)

    assert [f.rule for f in result.findings] == ["amtool-check-config"]
    assert 'undefined receiver "nobody"' in result.findings[0].title


def test_a_latency_alert_looser_than_the_budget_fails_its_threshold_and_its_generated_test(tmp_path):
    source = variant(tmp_path, "1.0.0", {"alerts/rules.yml": ("[5m]))) > 0.25", "[5m]))) > 0.3")})
    policy, ctx = demo_run(tmp_path, "1.0.0", source)

    result = alerts.run(policy, ctx)

    assert [f.rule for f in result.findings] == ["budget-alert-threshold", "budget-alert-fires"]
    assert "did not fire at 262.5 ms, past the 250 ms budget" in result.findings[1].title
    assert "got: {} 0E+00" in result.findings[1].evidence


def test_an_alert_watching_the_wrong_series_never_fires_in_the_generated_test(tmp_path):
    source = variant(tmp_path, "1.0.0", {"alerts/rules.yml": (
        'rate(http_requests_total{job="inventory",status=~"5.."}[5m]',
        'rate(http_requests_total{job="inventory",status=~"5..",method="POST"}[5m]')})
    policy, ctx = demo_run(tmp_path, "1.0.0", source)

    result = alerts.run(policy, ctx)

    generated = [(f.rule, f.data["budget"]) for f in result.findings if "budget" in f.data]
    assert generated == [("budget-alert-fires", "error_rate")]  # (the service's own error test fails too)
