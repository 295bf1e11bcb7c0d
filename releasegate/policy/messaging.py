"""Background work: the broker and workers in `environment`, and the `messaging` section that checks their queues."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from releasegate.domain.models import Severity
from releasegate.policy.spec import MAX_INTERVAL_S, MAX_TIMEOUT_S, Command, Env, _Spec

QUEUE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


class Broker(_Spec):
    """The broker the service and its workers use. The gate gives each run its own part of it (RabbitMQ: a virtual
    host; Redis: a key prefix), fills in {broker_url} and {broker_prefix}, and removes that part afterwards."""

    kind: Literal["redis", "rabbitmq"]
    url: str = Field(description="The server: redis://127.0.0.1:6379/0 or amqp://guest:guest@127.0.0.1:5672/ (its "
                                 "virtual host is replaced by the run's own).")
    node: str | None = Field(None, description="RabbitMQ: the node rabbitmqctl manages (-n), e.g. rabbit@mq1; "
                                               "default: rabbitmqctl's own (the node on this host).")

    @model_validator(mode="after")
    def _url_of_kind(self) -> Broker:
        schemes = ("redis://",) if self.kind == "redis" else ("amqp://",)
        if not self.url.startswith(schemes):
            raise ValueError(f"a {self.kind} broker's url starts with {schemes[0]}, e.g. "
                             + ("redis://127.0.0.1:6379/0" if self.kind == "redis"
                                else "amqp://guest:guest@127.0.0.1:5672/"))
        return self


class Worker(_Spec):
    """A background process started beside the service (after the broker, before the service) and stopped with it."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Short id, e.g. restock.")
    start: Command = Field(description="e.g. '{python} -m celery -A inventory.jobs worker --pool solo -Q restock'.")
    env: Env = Field(default_factory=dict, description="Added to environment.env, e.g. BROKER_URL: '{broker_url}'.")
    start_grace_s: float = Field(1.0, ge=0, le=MAX_INTERVAL_S, description="The worker must still run this long "
                                 "after it started (and when the service is healthy), else provisioning fails.")
    stop_signal: Literal["SIGTERM", "SIGINT", "SIGQUIT"] = "SIGTERM"
    stop_timeout_s: float = Field(10, gt=0, le=MAX_TIMEOUT_S)


class JobCounts(_Spec):
    """Counters the service and its workers keep on Redis under the run's prefix ({broker_prefix}): every job created
    must be completed."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$", description="Short id, e.g. restock.")
    created: str = Field(pattern=QUEUE_NAME, description="Key the service increments per job it queues.")
    completed: str = Field(pattern=QUEUE_NAME, description="Key the worker increments per job it completed.")


class Messaging(_Spec):
    """After the suites and the load test: the queues drain, the dead-letter queues stay empty, the jobs complete."""

    queues: list[str] = Field(min_length=1, description="Queues that must drain (0 messages) within drain_timeout_s.")
    dead_letter_queues: list[str] = Field(default_factory=list, description="Queues that must hold no message.")
    drain_timeout_s: float = Field(60, gt=0, le=MAX_TIMEOUT_S)
    interval_s: float = Field(0.5, gt=0, le=MAX_INTERVAL_S)
    jobs: list[JobCounts] = Field(default_factory=list, description="Redis only: created and completed counters per "
                                  "kind of job; fewer completed than created is a finding.")
    severity: Severity = Field(Severity.high, description="Severity of a queue that does not drain or a dead letter.")
    required: bool = True

    @model_validator(mode="after")
    def _names(self) -> Messaging:
        import re

        bad = [q for q in [*self.queues, *self.dead_letter_queues] if not re.match(QUEUE_NAME, q)]
        if bad:
            raise ValueError(f"queue names are letters, digits and _ . : - ; not: {', '.join(bad)}")
        return self
