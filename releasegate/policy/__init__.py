"""The gate policy (`gate.yaml`): one per service, validated here, with a published JSON schema.

Paths to the service's own files (suite paths, locustfile, requirements, semgrep paths, alert files) are relative
to its source folder; paths to the gate's inputs (source.path, semgrep rules, osv_data, chaos experiments,
dependency folders) to the policy file (docs/policy.md, "Paths"). Strings may use placeholders, filled in when the
gate runs: {version} {port} {host} {base_url} {workdir} {python} {service} {evidence} {run_id}.

One module per job; import the policy's names from here (`check_policy` from `releasegate.policy.check`):
- `model` the whole policy, one module per section (`environment`, `suites`, `load`, `scans`, `alerts`,
  `chaos`, `notify`, `waivers`) and `spec` (what they share: strict models, value types, limits);
- `loading` reads and validates a file (`parsing` the YAML, `explain` the problems: file, line, field, fix);
- `placeholders` which exist and how they are filled in; `schema` the JSON schema;
- `check` (`releasegate policy check`, one `check_*` module per kind): what can be checked without running.
"""

from releasegate.policy.alerts import (
    AlertBudgets,
    Alertmanager,
    Alerts,
    BudgetAlert,
    FeedSeries,
    RouteExpectation,
)
from releasegate.policy.chaos import Chaos, ChaosExperiment
from releasegate.policy.environment import (
    Dependency,
    DependencyHealth,
    EnvironmentSpec,
    HealthCheck,
    Source,
)
from releasegate.policy.explain import dotted, line_of
from releasegate.policy.load import Budgets, Distributed, Load, Soak, Stress, Telemetry
from releasegate.policy.loading import load_policy
from releasegate.policy.messaging import Broker, Messaging, Worker
from releasegate.policy.migrations import Migrations
from releasegate.policy.model import Policy
from releasegate.policy.notify import Notify, Slack
from releasegate.policy.parsing import PolicyLoader
from releasegate.policy.placeholders import (
    PLACEHOLDERS,
    REPORT_URL_PLACEHOLDERS,
    dependency_placeholders,
    fill,
    fill_command,
    render_report_url,
)
from releasegate.policy.scans import PipAudit, Scans, Semgrep
from releasegate.policy.schema import json_schema, schema_json
from releasegate.policy.security import Authz, AuthzEndpoint, Caller, Dast, SetupRequest
from releasegate.policy.spec import (
    DEFAULT_MAX_ADVISORY_AGE_DAYS,
    MAX_ADVISORY_AGE_DAYS,
    MAX_COOLDOWN_S,
    MAX_INTERVAL_S,
    MAX_NESTING,
    MAX_NODES,
    MAX_POLICY_BYTES,
    MAX_PROBLEMS_SHOWN,
    MAX_TIMEOUT_S,
    Command,
    Env,
    EnvName,
)
from releasegate.policy.suites import Suite
from releasegate.policy.waivers import Waivers

__all__ = [
    "DEFAULT_MAX_ADVISORY_AGE_DAYS",
    "MAX_ADVISORY_AGE_DAYS",
    "MAX_COOLDOWN_S",
    "MAX_INTERVAL_S",
    "MAX_NESTING",
    "MAX_NODES",
    "MAX_POLICY_BYTES",
    "MAX_PROBLEMS_SHOWN",
    "MAX_TIMEOUT_S",
    "PLACEHOLDERS",
    "REPORT_URL_PLACEHOLDERS",
    "AlertBudgets",
    "Authz",
    "AuthzEndpoint",
    "Alertmanager",
    "Alerts",
    "BudgetAlert",
    "Broker",
    "Budgets",
    "Caller",
    "Chaos",
    "ChaosExperiment",
    "Command",
    "Dast",
    "Dependency",
    "DependencyHealth",
    "Distributed",
    "Env",
    "EnvName",
    "EnvironmentSpec",
    "FeedSeries",
    "HealthCheck",
    "Load",
    "Messaging",
    "Migrations",
    "Notify",
    "PipAudit",
    "Policy",
    "PolicyLoader",
    "RouteExpectation",
    "Scans",
    "Semgrep",
    "SetupRequest",
    "Slack",
    "Soak",
    "Source",
    "Stress",
    "Suite",
    "Telemetry",
    "Waivers",
    "Worker",
    "dependency_placeholders",
    "dotted",
    "fill",
    "fill_command",
    "json_schema",
    "line_of",
    "load_policy",
    "render_report_url",
    "schema_json",
]
