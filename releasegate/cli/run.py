"""`run` the gate here, `trigger` it on Airflow (and wait for its verdict), list recent `runs`.

run: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 the gate could not start (bad policy, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from releasegate.cli.output import EXIT, EXIT_CANNOT_START, describe, print_rows
from releasegate.domain.errors import ReleaseGateError


def add_run_command(sub) -> None:
    run = sub.add_parser("run", help="run the gate for one service version",
                         description="Exit codes: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 cannot start.")
    run.add_argument("--policy", required=True, help="the service's gate.yaml")
    run.add_argument("--version", required=True, help="the version to gate, e.g. 1.4.2")
    run.add_argument("--evidence-dir", help="where evidence goes (default: $RELEASEGATE_HOME/evidence/...)")
    run.add_argument("--json", action="store_true", help="print one JSON object with the decision")
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """Once the run has started there is always a verdict to print: a crash of the gate itself is INCONCLUSIVE
    (exit 3) naming the fault, never a traceback with NO_GO's exit code."""
    from releasegate.pipeline import run_gate
    from releasegate.redact import redact

    progress = (lambda m: None) if args.json else (lambda m: print(redact(m), file=sys.stderr, flush=True))
    try:
        outcome = run_gate(args.policy, args.version, evidence_dir=args.evidence_dir, progress=progress)
        data, recorded = outcome.as_json(), outcome.recorded
    except ReleaseGateError as exc:  # the run could not start: exit 2, and with --json still one object
        if args.json:
            print(redact(json.dumps({"decision": None, "error": str(exc)}, indent=2)))
        raise
    except Exception as exc:  # noqa: BLE001 - fail closed, with the cause
        logging.getLogger("releasegate").debug("the gate crashed", exc_info=True)
        data, recorded = _crashed(args, exc), False
    text = json.dumps(data, indent=2) if args.json else describe(data)
    if not recorded and not args.json:
        text += "\n  (this verdict could not be recorded in the gate database)"
    print(redact(text))
    return EXIT[data["decision"]]


def _crashed(args: argparse.Namespace, exc: BaseException) -> dict:
    from datetime import UTC, datetime

    from releasegate.pipeline import cause

    return {"decision": "INCONCLUSIVE", "run_id": "", "service": "", "version": args.version, "report": "",
            "evidence_dir": args.evidence_dir or "", "notification": "", "decided_at": datetime.now(UTC).isoformat(),
            "reasons": [{"stage": "gate:run", "severity": "high",
                         "message": f"missing_evidence: the gate failed: {cause(exc)}"}],
            "waivers": [], "defects": []}


def add_trigger_command(sub) -> None:
    trigger = sub.add_parser("trigger", help="run the gate on Airflow through its REST API (and wait for the verdict)",
                             description="Airflow from RELEASEGATE_AIRFLOW_URL; credentials from "
                                         "RELEASEGATE_AIRFLOW_TOKEN, or RELEASEGATE_AIRFLOW_USERNAME and "
                                         "RELEASEGATE_AIRFLOW_PASSWORD. With --wait, exit codes as `run`: 0 GO, "
                                         "1 NO_GO, 3 INCONCLUSIVE, 2 could not trigger or wait.")
    trigger.add_argument("--service", required=True)
    trigger.add_argument("--version", required=True)
    trigger.add_argument("--policy", required=True,
                         help="the service's gate.yaml as the workers see it (a file that exists here is sent absolute)")
    trigger.add_argument("--wait", action="store_true", help="wait for the verdict and exit by it")
    trigger.add_argument("--timeout", type=float, default=3600, metavar="SECONDS", help="longest wait (default 3600)")
    trigger.add_argument("--json", action="store_true", help="print one JSON object")
    trigger.add_argument("--approval-timeout-minutes", type=float, default=0, metavar="MINUTES",
                         help="let an INCONCLUSIVE run (or a NO_GO whose blockers all have waiver requests) wait this "
                              "long for an Airflow user other than you to approve it (default 0: no approval step)")
    trigger.set_defaults(func=cmd_trigger)


def cmd_trigger(args: argparse.Namespace) -> int:
    from releasegate.airflow_glue import trigger

    try:
        return _trigger(args, trigger)
    except trigger.TriggerError as exc:
        from releasegate.redact import redact

        message = redact(str(exc))  # a URL with credentials in it must not reach a CI log
        if args.json:  # one object, also when there is no verdict
            print(json.dumps({"decision": None, "error": message, "dag_run_id": getattr(exc, "run_id", None)}))
        print(f"releasegate: {message}", file=sys.stderr)
        return EXIT_CANNOT_START


def _trigger(args: argparse.Namespace, trigger) -> int:
    api = trigger.AirflowApi.from_environment()
    if args.approval_timeout_minutes < 0:
        raise trigger.TriggerError("--approval-timeout-minutes must be 0 (no approval step) or more")
    run_id = trigger.trigger(api, args.service, args.version, args.policy, args.approval_timeout_minutes)
    if not args.wait:
        print(json.dumps({"dag_run_id": run_id, "dag_run_state": "queued"}) if args.json else f"triggered {run_id}")
        return 0
    print(f"waiting for {run_id} ...", file=sys.stderr, flush=True)
    final = trigger.wait(api, run_id, args.timeout)
    why = ""
    if not trigger.has_verdict(final):
        task, line = trigger.first_failure(api, run_id)
        why = f"task {task} failed: {line}" if task else ""
        if task == "open_run":  # the gate never opened its run: nothing was decided, as `run` exiting 2
            raise trigger.RunNotStarted(f"run {run_id} could not start: {line or 'read the open_run task log'}",
                                        run_id=run_id)
    data = trigger.answer(run_id, final, why)
    trigger.note(api, run_id, data)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(describe({"run_id": run_id, "service": args.service, "version": args.version, "report": "", **data}))
    return EXIT[data["decision"]]


def add_runs_command(sub) -> None:
    runs = sub.add_parser("runs", help="recent gate runs and their verdicts")
    runs.add_argument("--service")
    runs.add_argument("--version")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    from releasegate.records import store

    with store.unit_of_work() as uow:
        rows = uow.runs.latest(service=args.service, version=args.version, limit=args.limit)
    return print_rows(rows, args.json, lambda row: f"{row['started_at']}  {row['service']} {row['version']}  "
                                                   f"{row.get('decision') or row['status']}  {row['run_id']}")
