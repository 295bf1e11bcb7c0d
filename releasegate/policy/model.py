"""The whole policy: its sections, what holds across them, and where it was read from."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, PrivateAttr, field_validator, model_validator

from releasegate.policy.alerts import Alerts
from releasegate.policy.chaos import Chaos
from releasegate.policy.environment import EnvironmentSpec, Source
from releasegate.policy.load import Load
from releasegate.policy.messaging import Messaging
from releasegate.policy.migrations import Migrations
from releasegate.policy.notify import Notify
from releasegate.policy.scans import Scans
from releasegate.policy.security import Authz, Dast
from releasegate.policy.spec import _Spec
from releasegate.policy.suites import Suite
from releasegate.policy.waivers import Waivers


class Policy(_Spec):
    """A service's release gate: what must hold before a version ships."""

    service: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    source: Source = Field(default_factory=Source)
    environment: EnvironmentSpec | None = None
    suites: list[Suite] = Field(default_factory=list)
    load: Load | None = None
    scans: Scans = Field(default_factory=Scans)
    alerts: Alerts | None = None
    chaos: Chaos | None = None
    dast: Dast | None = None
    authz: Authz | None = None
    migrations: Migrations | None = None
    messaging: Messaging | None = None
    notify: Notify = Field(default_factory=Notify)
    waivers: Waivers = Field(default_factory=Waivers)

    _path: Path | None = PrivateAttr(default=None)
    _digest: str = PrivateAttr(default="")
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)  # field path -> line in the file

    @field_validator("suites")
    @classmethod
    def _unique_suite_names(cls, suites: list[Suite]) -> list[Suite]:
        names = [s.name for s in suites]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"suite names must be unique; repeated: {', '.join(dupes)}")
        return suites

    @model_validator(mode="after")
    def _service_for_suites(self) -> Policy:
        needing = [s.name for s in self.suites if s.needs_service]
        if (needing or self.load) and self.environment is None:
            what = f"suites {needing}" if needing else "load"
            raise ValueError(f"{what} need the running service: add an 'environment' section (start, health)")
        return self

    @model_validator(mode="after")
    def _broker_for_messaging(self) -> Policy:
        if self.messaging and (self.environment is None or self.environment.broker is None):
            raise ValueError("messaging counts the queues of the run's broker: add environment.broker (kind, url)")
        if self.messaging and self.messaging.jobs and self.environment and self.environment.broker \
                and self.environment.broker.kind != "redis":
            raise ValueError("messaging.jobs reads counters from Redis: use a redis broker, or leave jobs out")
        return self

    @property
    def path(self) -> Path:
        assert self._path is not None, "policy was not loaded from a file"
        return self._path

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def digest(self) -> str:
        return self._digest

    def resolve(self, relative: str) -> Path:
        """A path from the policy, relative to the policy file."""
        return (self.base_dir / relative).resolve()

    def source_dir(self, version: str) -> Path:
        return self.resolve(self.source.path.replace("{version}", version))
