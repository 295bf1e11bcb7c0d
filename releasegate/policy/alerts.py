"""The `alerts` section: rules and their tests, the alerts that cover load budgets, Alertmanager routes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from releasegate.policy.spec import MAX_TIMEOUT_S, _Spec

_METRIC_NAME = r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"


class FeedSeries(_Spec):
    """The input series a generated promtool test feeds the alert, as one of four common shapes.

    The gate fills in the value (the budget just past / just under, in the alert's unit):
    - histogram: two `le` buckets (`metric` is the _bucket series) so any histogram_quantile() is the value;
    - ratio: two counters of `metric`, `bad` and `good` requests, whose rate ratio is the value;
    - rate: one counter of `metric` growing by the value per second;
    - gauge: one series of `metric` holding the value.
    Labels are a mapping (PromQL braces are not allowed in policy strings), e.g. {job: inventory}.
    """

    shape: Literal["histogram", "ratio", "rate", "gauge"]
    metric: str = Field(pattern=_METRIC_NAME, description="e.g. http_request_duration_seconds_bucket.")
    labels: dict[str, str] = Field(default_factory=dict, description="Labels on every series, e.g. {job: inventory}.")
    bad: dict[str, str] = Field(default_factory=dict, description="ratio: labels of failing requests, e.g. {status: '500'}.")
    good: dict[str, str] = Field(default_factory=dict, description="ratio: labels of good requests, e.g. {status: '200'}.")

    @model_validator(mode="after")
    def _ratio_needs_both(self) -> FeedSeries:
        if self.shape == "ratio" and not (self.bad and self.good):
            raise ValueError("shape ratio needs 'bad' and 'good' labels, e.g. bad: {status: '500'}, good: {status: '200'}")
        return self


class BudgetAlert(_Spec):
    """The alert rule that covers one load budget, and how to feed it a value in a generated test."""

    alert: str = Field(description="Alert name in the rule files, e.g. InventoryHighLatencyP95.")
    series: FeedSeries
    scale: float | None = Field(
        None, gt=0, description="Alert value = budget × scale; default 0.001 for *_ms budgets (alerts compare "
                                "seconds), else 1. Use 1 for an alert in ms, 100 for an error rate in percent.")
    margin: float = Field(0.05, gt=0, lt=0.5, description="How far past / under the budget the generated values sit.")


class AlertBudgets(_Spec):
    """Which alert covers which budget of load.budgets; each is checked by threshold and by generated tests."""

    p50_ms: BudgetAlert | None = None
    p95_ms: BudgetAlert | None = None
    p99_ms: BudgetAlert | None = None
    error_rate: BudgetAlert | None = None
    min_rps: BudgetAlert | None = None


class RouteExpectation(_Spec):
    """An alert with these labels must reach exactly these receivers."""

    labels: dict[str, str] = Field(min_length=1, description="e.g. {severity: critical, service: inventory}.")
    receivers: list[str] = Field(min_length=1, description="e.g. [pager].")


class Alertmanager(_Spec):
    """Alertmanager config checked with `amtool check-config` and `amtool config routes test`."""

    config: str = Field(description="Alertmanager config, relative to the source, e.g. alerts/alertmanager.yml.")
    routes: list[RouteExpectation] = Field(default_factory=list)


class Alerts(_Spec):
    rule_files: list[str] = Field(min_length=1, description="Prometheus rule files, relative to the source.")
    tests: list[str] = Field(min_length=1, description="promtool rule-test files, relative to the source.")
    budgets: AlertBudgets = Field(
        default_factory=AlertBudgets, description="Alerts covering load budgets (needs load.budgets).")
    alertmanager: Alertmanager | None = None
    required: bool = True
    timeout_s: float = Field(120, gt=0, le=MAX_TIMEOUT_S)
