"""Messaging stage: after the suites and the load test, the queues the policy names drain within its limit and
no message sits in a dead-letter queue, counted on the run's own part of the broker (releasegate.environment.brokers).

Findings: a queue still holding messages at `drain_timeout_s`, a dead-letter queue holding any, fewer jobs
completed than created (`jobs`: counters the service and its workers keep on Redis), each with the counts. Errors (INCONCLUSIVE): no broker in the environment, a broker that cannot be asked (down, its virtual host
gone, rabbitmqctl failing). The samples taken while waiting are evidence (`messaging/samples.json`).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import datetime
from pathlib import Path

from releasegate.context import RunContext
from releasegate.domain.errors import StageError
from releasegate.domain.fingerprint import fingerprint
from releasegate.domain.models import Artifact, Finding, Metric, StageResult, Status
from releasegate.environment import Environment
from releasegate.environment.brokers import counters, queue_depths
from releasegate.environment.running import RunningBroker
from releasegate.policy import Messaging, Policy
from releasegate.stages.base import fresh_folder, guarded, now
from releasegate.stages.registry import Planned

log = logging.getLogger("releasegate")

STAGE = "messaging"
KIND = "messaging"


def run_planned(policy: Policy, ctx: RunContext, env: Environment | None, planned: Planned) -> StageResult:
    """The stage as the registry runs it: it needs the provisioned environment's broker."""
    spec: Messaging = planned.entry
    return guarded(planned.name, KIND, planned.required, lambda started: _run(spec, ctx, env, started))


def _run(spec: Messaging, ctx: RunContext, env: Environment | None, started: datetime) -> StageResult:
    if env is None or env.broker is None:
        raise StageError("messaging: the environment has no broker to count — add environment.broker (kind, url)")
    out_dir = fresh_folder(ctx.evidence / STAGE)
    samples = wait_drained(env.broker, spec)
    dead, jobs = samples[-1]["dead_letter"], samples[-1]["jobs"]
    doc = {"broker": env.broker.kind, "samples": samples, "dead_letter": dead, "jobs": jobs}
    (out_dir / "samples.json").write_text(json.dumps(doc, indent=2), encoding="utf-8")
    findings = judge(spec, samples, dead) + judge_jobs(spec, jobs)
    result = _result(spec, started, samples, dead, findings, out_dir)
    log.info("%s", result.summary)
    return result


def wait_drained(broker: RunningBroker, spec: Messaging) -> list[dict]:
    """Samples ({"at_s", "depths", "dead_letter", "jobs"}) every interval_s until every queue is empty and every job
    created has completed or been dead-lettered, or drain_timeout_s has passed."""
    start = time.monotonic()
    samples = []
    while True:
        sample = _sample(broker, spec)
        sample["at_s"] = at = round(time.monotonic() - start, 3)
        samples.append(sample)
        if _settled(sample) or at >= spec.drain_timeout_s:
            return samples
        time.sleep(min(spec.interval_s, max(0.0, spec.drain_timeout_s - at)))


def _sample(broker: RunningBroker, spec: Messaging) -> dict:
    depths = queue_depths(broker, spec.queues)
    dead = queue_depths(broker, spec.dead_letter_queues) if spec.dead_letter_queues else {}
    counts = counters(broker, [k for j in spec.jobs for k in (j.created, j.completed)]) if spec.jobs else {}
    jobs = {j.name: {"created": counts[j.created], "completed": counts[j.completed]} for j in spec.jobs}
    return {"depths": depths, "dead_letter": dead, "jobs": jobs}


def _settled(sample: dict) -> bool:
    failed = sum(sample["dead_letter"].values())
    unfinished = sum(max(0, j["created"] - j["completed"]) for j in sample["jobs"].values())
    return not any(sample["depths"].values()) and unfinished <= failed


def judge_jobs(spec: Messaging, jobs: dict[str, dict[str, int]]) -> list[Finding]:
    """A finding per kind of job with fewer completed than created."""
    return [_incomplete(spec, name, c["created"], c["completed"]) for name, c in jobs.items()
            if c["completed"] < c["created"]]


def _incomplete(spec: Messaging, name: str, created: int, completed: int) -> Finding:
    title = (f"messaging: jobs {name}: {created} created, {completed} completed — {created - completed} did not "
             "complete (counters on the broker, messaging.jobs)")
    return Finding(kind=KIND, rule="jobs-not-completed", severity=spec.severity, title=title, location=name,
                   fingerprint=fingerprint(KIND, "jobs-not-completed", name),
                   data={"job": name, "created": created, "completed": completed})


def judge(spec: Messaging, samples: list[dict], dead: dict[str, int]) -> list[Finding]:
    first, last = samples[0], samples[-1]
    findings = [_undrained(spec, q, first["depths"][q], n, last["at_s"]) for q, n in last["depths"].items() if n]
    return findings + [_dead_letters(spec, q, n) for q, n in dead.items() if n]


def _undrained(spec: Messaging, queue: str, at_first: int, left: int, waited: float) -> Finding:
    title = (f"messaging: queue {queue} still holds {left} messages after {waited:.1f} s (it held {at_first} when "
             f"the check began; limit {spec.drain_timeout_s:g} s, messaging.drain_timeout_s) — the workers do not "
             "keep up or do not consume it")
    return Finding(kind=KIND, rule="queue-does-not-drain", severity=spec.severity, title=title, location=queue,
                   fingerprint=fingerprint(KIND, "queue-does-not-drain", queue),
                   data={"queue": queue, "left": left, "at_first": at_first, "waited_s": waited})


def _dead_letters(spec: Messaging, queue: str, count: int) -> Finding:
    title = (f"messaging: dead-letter queue {queue} holds {count} messages (the policy allows none) — jobs failed; "
             "the worker's log says why")
    return Finding(kind=KIND, rule="dead-letters", severity=spec.severity, title=title, location=queue,
                   fingerprint=fingerprint(KIND, "dead-letters", queue), data={"queue": queue, "messages": count})


def _result(spec: Messaging, started: datetime, samples: list[dict], dead: dict[str, int], findings: list[Finding],
            out_dir: Path) -> StageResult:
    first, last = samples[0]["depths"], samples[-1]["depths"]
    queues = ", ".join(f"{q} {first[q]} -> {last[q]}" for q in spec.queues)
    dlq = ", ".join(f"{q} {n}" for q, n in dead.items()) or "none named"
    jobs = samples[-1]["jobs"]
    done = "".join(f"; jobs {n} {c['completed']}/{c['created']} completed" for n, c in jobs.items())
    summary = (f"messaging: {len(findings)} findings; queues {queues} in {samples[-1]['at_s']:.1f} s; dead-letter "
               f"{dlq}{done}; samples: {out_dir / 'samples.json'}")
    metrics = [Metric(name=f"{q}_left", value=last[q], threshold=0, operator="<=", passed=last[q] == 0)
               for q in spec.queues]
    metrics += [Metric(name=f"{q}_at_start", value=first[q]) for q in spec.queues]
    metrics += [Metric(name=f"{q}_dead", value=n, threshold=0, operator="<=", passed=n == 0) for q, n in dead.items()]
    metrics += [Metric(name=f"{n}_{k}", value=c[k]) for n, c in jobs.items() for k in ("created", "completed")]
    metrics.append(Metric(name="drain_wait", value=samples[-1]["at_s"], unit="s", threshold=spec.drain_timeout_s,
                          operator="<="))
    return StageResult(stage=STAGE, kind=KIND, status=Status.failed if findings else Status.passed,
                       required=spec.required, started=started, finished=now(), summary=summary, findings=findings,
                       metrics=metrics, artifacts=[Artifact.of(out_dir / "samples.json")])
