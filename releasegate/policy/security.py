"""The `dast` and `authz` sections: the running service probed as an attacker would (docs/policy.md, "DAST and
the authorization matrix").

Both name callers: who sends a request and with which bearer token. A caller's token is written in the policy
(`token`), read from the gate's environment (`token_env`), obtained by a setup request (`setup`: a login the
service answers with a token), or forged from another caller's token (`forge`: the same token with its last
characters altered, which a service that checks signatures refuses). A caller with none of these is anonymous.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from releasegate.domain.models import Severity
from releasegate.policy.spec import MAX_TIMEOUT_S, _Spec

HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# A status class the matrix expects: a code (401), a class (2xx), or alternatives (401|403).
STATUS_CLASS = r"^[1-5](?:\d\d|xx)(?:\|[1-5](?:\d\d|xx))*$"
CALLER_NAME = r"^[a-z][a-z0-9_-]*$"
MAX_EXAMPLES = 1000

# Schemathesis's checks, each with the severity a failure gets unless dast.severity says otherwise
# (docs/policy.md, "DAST and the authorization matrix"); a check not listed here is high.
DAST_CHECK_SEVERITY: dict[str, Severity] = {
    "ignored_auth": Severity.critical,
    "not_a_server_error": Severity.high,
    "use_after_free": Severity.high,
    "object_level_authorization": Severity.critical,
    "response_schema_conformance": Severity.medium,
    "negative_data_rejection": Severity.medium,
    "ensure_resource_availability": Severity.medium,
    "status_code_conformance": Severity.low,
    "content_type_conformance": Severity.low,
    "response_headers_conformance": Severity.low,
    "positive_data_acceptance": Severity.low,
    "missing_required_header": Severity.low,
    "unsupported_method": Severity.low,
    "allow_header_conformance": Severity.low,
}
DAST_UNKNOWN_SEVERITY = Severity.high
# What the gate checks itself in every answer Schemathesis got (not a Schemathesis check: not for `checks`).
TRACE_CHECK = "trace_in_error_body"
DEFAULT_DAST_CHECKS = ["not_a_server_error", "response_schema_conformance", "ignored_auth"]
Phase = Literal["examples", "coverage", "fuzzing", "stateful"]


def _default_phases() -> list[Phase]:
    return ["examples", "coverage", "fuzzing"]


class SetupRequest(_Spec):
    """A request that obtains a token (a login): its answer's JSON field `token_field` is the token."""

    method: Literal["GET", "POST", "PUT"] = "POST"
    path: str = Field(pattern=r"^/", description="Path on the service, e.g. /auth/token.")
    json_body: dict[str, Any] = Field(default_factory=dict, alias="json",
                                      description="The JSON body sent (credentials for a test account).")
    token_field: str = Field("token", description="Dotted path of the token in the answer's JSON, e.g. data.token.")


class Caller(_Spec):
    """Who calls: anonymous (nothing set), or a bearer token from exactly one of token, token_env, setup, forge."""

    token: str | None = Field(None, description="A literal token (a malformed or an expired one, for instance).")
    token_env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                                  description="The gate's environment variable holding the token.")
    setup: SetupRequest | None = None
    forge: str | None = Field(None, pattern=CALLER_NAME,
                              description="Another caller whose token is altered (a forged signature).")

    @model_validator(mode="after")
    def _one_source(self) -> Caller:
        given = [name for name in ("token", "token_env", "setup", "forge") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"a caller's token comes from one of token, token_env, setup, forge; got {given}")
        return self


def _known_callers(callers: dict[str, Caller], *used: str) -> None:
    for name in used:
        if name not in callers:
            raise ValueError(f"caller {name!r} is not defined; callers: {', '.join(sorted(callers)) or 'none'}")
    for name, caller in callers.items():
        if caller.forge is not None and (caller.forge not in callers or callers[caller.forge].forge is not None):
            raise ValueError(f"callers.{name}.forge: {caller.forge!r} must name a caller whose token is not forged")


class Dast(_Spec):
    openapi: str = Field(description="The service's OpenAPI document: a URL ({base_url}/openapi.json) or a file "
                                     "relative to the source.")
    base_url: str | None = Field(None, description="Where to send requests; default: the provisioned service.")
    checks: list[str] = Field(default_factory=lambda: list(DEFAULT_DAST_CHECKS), min_length=1,
                              description="Schemathesis checks (schemathesis run --checks).")
    max_examples: int = Field(20, ge=1, le=MAX_EXAMPLES, description="Test cases per operation at most.")
    max_time_s: float | None = Field(
        None, ge=1, le=3600, description="A time budget Schemathesis spends whole (--max-time: fuzzing repeats "
                                          "until it is spent); unset, the run ends when max_examples are done.")
    phases: list[Phase] = Field(default_factory=_default_phases, min_length=1,
                                description="Schemathesis's test phases (--phases).")
    seed: int | None = Field(None, description="Fixed seed: the same run's examples again.")
    callers: dict[str, Caller] = Field(default_factory=dict, description="Callers `auth` may name.")
    auth: str | None = Field(None, pattern=CALLER_NAME,
                             description="The caller whose token every request carries (ignored_auth needs one).")
    severity: dict[str, Severity] = Field(default_factory=dict,
                                          description="Severity of a check's failures, over the defaults.")
    blocking_severity: Severity = Severity.high
    required: bool = True
    timeout_s: float = Field(300, gt=0, le=MAX_TIMEOUT_S)

    @field_validator("checks")
    @classmethod
    def _known_checks(cls, checks: list[str]) -> list[str]:
        unknown = [c for c in checks if c not in DAST_CHECK_SEVERITY and c != "all"]
        if unknown:
            raise ValueError(f"unknown checks {unknown}; known: {', '.join(sorted(DAST_CHECK_SEVERITY))}, all")
        return checks

    @model_validator(mode="after")
    def _auth_is_a_caller(self) -> Dast:
        _known_callers(self.callers, *([self.auth] if self.auth else []))
        return self

    def severity_of(self, check: str) -> Severity:
        return self.severity.get(check) or DAST_CHECK_SEVERITY.get(check, DAST_UNKNOWN_SEVERITY)  # TRACE_CHECK: high


class AuthzEndpoint(_Spec):
    method: str = Field(description="HTTP method.")
    path: str = Field(pattern=r"^/", description="A concrete path, e.g. /items/1/stock.")
    json_body: Any = Field(None, alias="json", description="The JSON body sent (writes).")
    expect: dict[str, str] = Field(description="Caller name -> status class: 2xx, 401, 401|403, 4xx.")

    @field_validator("method")
    @classmethod
    def _method(cls, method: str) -> str:
        if method.upper() not in HTTP_METHODS:
            raise ValueError(f"unknown HTTP method {method!r}; one of {', '.join(HTTP_METHODS)}")
        return method.upper()

    @field_validator("expect")
    @classmethod
    def _classes(cls, expect: dict[str, str]) -> dict[str, str]:
        bad = {k: v for k, v in expect.items() if not re.match(STATUS_CLASS, str(v))}
        if bad:
            raise ValueError(f"expected status classes like 2xx, 401 or 401|403; got {bad}")
        return expect


class Authz(_Spec):
    base_url: str | None = Field(None, description="Where to send requests; default: the provisioned service.")
    callers: dict[str, Caller] = Field(min_length=1, description="Caller name -> how it gets its token.")
    endpoints: list[AuthzEndpoint] = Field(min_length=1)
    severity: Severity = Field(Severity.critical, description="Severity of a cell that answers otherwise.")
    forbid_headers: list[str] = Field(default_factory=list, description="Headers no answer may carry with a "
                                      "version in their value, e.g. Server, X-Powered-By.")
    require_headers: list[str] = Field(default_factory=list, description="Headers every answer must carry, e.g. "
                                       "X-Content-Type-Options, Strict-Transport-Security.")
    hygiene_severity: Severity = Field(Severity.high, description="Severity of a stack trace in a body, a "
                                       "forbidden or missing header, a TLS problem.")
    blocking_severity: Severity = Severity.high
    request_timeout_s: float = Field(10, gt=0, le=300)
    required: bool = True

    @field_validator("callers")
    @classmethod
    def _caller_names(cls, callers: dict[str, Caller]) -> dict[str, Caller]:
        bad = [n for n in callers if not re.match(CALLER_NAME, n)]
        if bad:
            raise ValueError(f"caller names are lower-case words (a-z, 0-9, _ -); got {bad}")
        return callers

    @model_validator(mode="after")
    def _callers_defined(self) -> Authz:
        _known_callers(self.callers, *sorted({c for e in self.endpoints for c in e.expect}))
        return self
