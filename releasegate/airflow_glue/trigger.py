"""`releasegate trigger`: a release train asks Airflow for a verdict through its REST API and waits for it.

Where Airflow is and who is asking come from the environment (what `scripts/cluster.py up` prints):
RELEASEGATE_AIRFLOW_URL (e.g. http://127.0.0.1:8080), and either RELEASEGATE_AIRFLOW_TOKEN (a bearer token)
or RELEASEGATE_AIRFLOW_USERNAME and RELEASEGATE_AIRFLOW_PASSWORD (exchanged at /auth/token).
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import requests

from releasegate.domain.errors import ReleaseGateError

log = logging.getLogger("releasegate")
DAG_ID = "release_gate"
RESULT_TASK = "verdict"
FINISHED = ("success", "failed", "canceled")


class TriggerError(ReleaseGateError):
    """Airflow could not be reached, refused the request, or the run could not be followed (``run_id``: the
    DAG run it was about, once there is one)."""

    def __init__(self, message: str, run_id: str | None = None) -> None:
        super().__init__(message)
        self.run_id = run_id


@dataclass(frozen=True)
class AirflowApi:
    url: str
    token: str
    timeout_s: float = 30

    @classmethod
    def from_environment(cls) -> AirflowApi:
        url = os.environ.get("RELEASEGATE_AIRFLOW_URL", "").rstrip("/")
        if not url:
            raise TriggerError("RELEASEGATE_AIRFLOW_URL is not set — export the Airflow API server's address, e.g. "
                               "http://127.0.0.1:8080 (scripts/cluster.py up prints it)")
        token = os.environ.get("RELEASEGATE_AIRFLOW_TOKEN") or _login(url)
        return cls(url, token)

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        try:
            response = requests.request(method, f"{self.url}{path}", timeout=kwargs.pop("timeout", self.timeout_s),
                                        headers=headers, **kwargs)
        except requests.RequestException as exc:
            raise TriggerError(f"{method} {self.url}{path}: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise TriggerError(f"{method} {self.url}{path}: HTTP {response.status_code}: {_detail(response)}")
        return response


def _login(url: str) -> str:
    user, password = os.environ.get("RELEASEGATE_AIRFLOW_USERNAME"), os.environ.get("RELEASEGATE_AIRFLOW_PASSWORD")
    if not user or not password:
        raise TriggerError("no Airflow credentials: set RELEASEGATE_AIRFLOW_TOKEN, or RELEASEGATE_AIRFLOW_USERNAME "
                           "and RELEASEGATE_AIRFLOW_PASSWORD")
    try:
        response = requests.post(f"{url}/auth/token", json={"username": user, "password": password}, timeout=30)
    except requests.RequestException as exc:
        raise TriggerError(f"POST {url}/auth/token: {type(exc).__name__}: {exc}") from None
    if response.status_code >= 400:
        raise TriggerError(f"POST {url}/auth/token as {user!r}: HTTP {response.status_code}: {_detail(response)}")
    return response.json()["access_token"]


def _detail(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    return str(body.get("detail", body))[:300] if isinstance(body, dict) else str(body)[:300]


def conf_policy(policy: str) -> str:
    """A policy path that exists here is sent absolute; anything else as given (relative to the gate's checkout)."""
    path = Path(policy)
    return str(path.resolve()) if not path.is_absolute() and path.is_file() else policy


def trigger(api: AirflowApi, service: str, version: str, policy: str, approval_timeout_minutes: float = 0) -> str:
    dag = api.call("GET", f"/api/v2/dags/{DAG_ID}").json()
    if dag.get("is_paused"):
        raise TriggerError(f"the {DAG_ID} DAG is paused, so a run would wait forever — unpause it in the UI or "
                           f"with `airflow dags unpause {DAG_ID}`")
    conf: dict[str, object] = {"service": service, "version": version, "policy": conf_policy(policy)}
    if approval_timeout_minutes:
        conf["approval_timeout_minutes"] = approval_timeout_minutes
    run = api.call("POST", f"/api/v2/dags/{DAG_ID}/dagRuns", json={"logical_date": None, "conf": conf}).json()
    log.info("triggered %s run %s for %s %s", DAG_ID, run["dag_run_id"], service, version)
    return run["dag_run_id"]


def wait(api: AirflowApi, run_id: str, timeout_s: float, interval_s: float = 2.0) -> dict:
    """Follow the wait endpoint's NDJSON stream to the run's final line: {"state": ..., "results": {...}}.

    `timeout_s` bounds the whole wait (the stream sends a line every interval, so a read timeout never would)."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}/wait"
    deadline = time.monotonic() + timeout_s
    last: dict = {}
    try:
        response = api.call("GET", path, params={"interval": interval_s, "result": RESULT_TASK}, stream=True,
                            timeout=(api.timeout_s, max(interval_s * 10, 30)))
        with response:
            for line in response.iter_lines(decode_unicode=True):
                if line.strip():
                    state = last.get("state")
                    last = json.loads(line)
                    if last.get("state") != state:  # progress when it changes, not on every poll
                        log.info("run %s: %s", run_id, last.get("state"))
                if last.get("state") in FINISHED:
                    break
                if time.monotonic() >= deadline:
                    raise _lost(run_id, f"no verdict within --timeout {timeout_s:g} s (state {last.get('state')!r}) "
                                        "— the run goes on: follow it in the Airflow UI, or wait longer")
    except requests.RequestException as exc:
        raise _lost(run_id, f"waiting for run {run_id}: {type(exc).__name__}: {exc} — is Airflow still up? The "
                            "run's state is in the Airflow UI") from None
    except TriggerError as exc:
        raise _lost(run_id, str(exc)) from None
    if last.get("state") not in FINISHED:
        raise _lost(run_id, f"the wait for run {run_id} ended with state {last.get('state')!r} — is Airflow still "
                            "up? The run's state is in the Airflow UI")
    return last


def _lost(run_id: str, message: str) -> TriggerError:
    return TriggerError(message, run_id=run_id)


class RunNotStarted(TriggerError):
    """The DAG run failed before the gate opened its run (a bad policy or parameters): nothing was decided."""


def answer(run_id: str, final: dict, why: str = "") -> dict:
    """The verdict JSON (as `releasegate run --json` prints it) plus the DAG run's id and state."""
    verdict = (final.get("results") or {}).get(RESULT_TASK)
    if not isinstance(verdict, dict):
        verdict = {"decision": "INCONCLUSIVE", "reasons": [{
            "stage": "airflow", "severity": "critical", "fingerprint": "",
            "message": f"the DAG run ended {final.get('state')} without a verdict: {why or 'read its task logs'}"}]}
    return {**verdict, "dag_run_id": run_id, "dag_run_state": final.get("state")}


def has_verdict(final: dict) -> bool:
    return isinstance((final.get("results") or {}).get(RESULT_TASK), dict)


def first_failure(api: AirflowApi, run_id: str) -> tuple[str, str]:
    """The first task that failed in the run and the last error line of its log ("", "" when none failed)."""
    run = quote(run_id, safe="")
    tis = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances").json()["task_instances"]
    failed = sorted((t for t in tis if t["state"] == "failed"), key=lambda t: t.get("start_date") or "")
    if not failed:
        return "", ""
    task = failed[0]
    try:
        log_doc = api.call("GET", f"/api/v2/dags/{DAG_ID}/dagRuns/{run}/taskInstances/{task['task_id']}/logs/"
                                  f"{task['try_number']}", params={"map_index": task["map_index"]},
                           headers={"Accept": "application/json"}).json()
    except (TriggerError, ValueError):
        return task["task_id"], ""
    return task["task_id"], last_error(log_doc.get("content", []))


def last_error(content: list) -> str:
    """The exception a task failed with (Airflow's structured task log: `error_detail`), else its last error
    event, as one line."""
    entries = [c for c in content if isinstance(c, dict)]
    for entry in reversed(entries):
        for detail in entry.get("error_detail") or []:
            if isinstance(detail, dict) and detail.get("exc_value"):
                return " ".join(f"{detail.get('exc_type', '')}: {detail['exc_value']}".split())[:600]
    errors = [str(e.get("event", "")) for e in entries if e.get("level") in ("error", "critical")]
    return " ".join((errors or [""])[-1].split())[:600]


def note(api: AirflowApi, run_id: str, result: dict) -> None:
    """Show the decision on the run in the Airflow UI; a failure here never changes the answer."""
    reasons = result.get("reasons", [])
    text = f"**{result['decision']}**" + "".join(f"\n- {r['stage']}: {r['message']}" for r in reasons[:5])
    try:
        api.call("PATCH", f"/api/v2/dags/{DAG_ID}/dagRuns/{quote(run_id, safe='')}", json={"note": text[:1000]},
                 params={"update_mask": "note"})
    except TriggerError as exc:
        log.warning("could not set the run's note: %s", exc)
