"""`releasegate`: the gate without a scheduler, with an exit-code contract.

run: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 the gate could not start (bad policy, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Sequence

from releasegate.errors import PolicyError, ReleaseGateError

EXIT = {"GO": 0, "NO_GO": 1, "INCONCLUSIVE": 3}
EXIT_CANNOT_START = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="releasegate", description="Release gate for backend services.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the gate for one service version",
                         description="Exit codes: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 cannot start.")
    run.add_argument("--policy", required=True, help="the service's gate.yaml")
    run.add_argument("--version", required=True, help="the version to gate, e.g. 1.4.2")
    run.add_argument("--evidence-dir", help="where evidence goes (default: $RELEASEGATE_HOME/evidence/...)")
    run.add_argument("--json", action="store_true", help="print one JSON object with the decision")
    run.set_defaults(func=cmd_run)
    add_trigger_command(sub)

    policy = sub.add_parser("policy", help="check a policy or print its JSON schema")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser("check", help="validate a gate.yaml and what it names, without running anything",
                            description="Exit codes: 0 valid, 2 not (each problem with file, line, field and fix).")
    check.add_argument("file")
    check.add_argument("--version", help="the version whose source folder to check (when source.path uses {version})")
    check.add_argument("--json", action="store_true", help="print one JSON object, also when the policy is not valid")
    check.set_defaults(func=cmd_policy_check)
    schema = psub.add_parser("schema", help="print the policy's JSON schema")
    schema.set_defaults(func=cmd_policy_schema)

    db = sub.add_parser("db", help="the gate database (RELEASEGATE_DB_URL, else SQLite under RELEASEGATE_HOME)")
    dsub = db.add_subparsers(dest="db_command", required=True)
    dsub.add_parser("upgrade", help="migrate to the newest schema").set_defaults(func=cmd_db_upgrade)
    down = dsub.add_parser("downgrade", help="migrate down to a revision")
    down.add_argument("revision")
    down.set_defaults(func=cmd_db_downgrade)
    dsub.add_parser("current", help="print the schema revision").set_defaults(func=cmd_db_current)
    add_db_admin_commands(dsub)

    runs = sub.add_parser("runs", help="recent gate runs and their verdicts")
    runs.add_argument("--service")
    runs.add_argument("--version")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)
    add_admin_commands(sub)
    add_notify_command(sub)
    return parser


def add_notify_command(sub) -> None:
    notify = sub.add_parser("notify", help="send the Slack notifications that were not delivered",
                            description="Exit codes: 0 every pending notification delivered (or none pending), "
                                        "1 some still pending, 2 Slack not configured.")
    notify.add_argument("--pending", action="store_true", required=True,
                        help="re-send every notification whose status is not 'sent'")
    notify.add_argument("--service", help="only this service's")
    notify.add_argument("--json", action="store_true")
    notify.set_defaults(func=cmd_notify_pending)


def cmd_notify_pending(args: argparse.Namespace) -> int:
    from releasegate.notify.slack import deliver_pending

    results = deliver_pending(service=args.service)
    _print_rows(results, args.json, lambda r: f"{r['service']}  run {r['run_id']}  {r['channel']}: {r['status']} "
                                              f"({r['attempts']} attempt(s) in all){_why(r)}")
    return 0 if all(r["status"] == "sent" for r in results) else 1


def _why(result: dict) -> str:
    return f" — {result['error']}" if result.get("error") else ""


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
    trigger.set_defaults(func=cmd_trigger)


def add_db_admin_commands(dsub) -> None:
    backup = dsub.add_parser("backup", help="copy the database to FILE (SQLite file, or a pg_dump custom archive)")
    backup.add_argument("file")
    backup.set_defaults(func=cmd_db_backup)
    restore = dsub.add_parser("restore", help="replace the database's contents with a backup FILE")
    restore.add_argument("file")
    restore.set_defaults(func=cmd_db_restore)
    purge = dsub.add_parser("purge", help="delete old runs and their evidence (keeps GO runs and runs an open "
                                          "defect or a live waiver refers to); audit events are kept")
    purge.add_argument("--older-than", type=float, required=True, metavar="DAYS")
    purge.set_defaults(func=cmd_db_purge)


def add_admin_commands(sub) -> None:
    waive = sub.add_parser("waive", help="grant a waiver: let one finding ship until a date")
    waive.add_argument("fingerprint", help="the defect's fingerprint, or a unique prefix of 8+ characters")
    waive.add_argument("--service", required=True)
    waive.add_argument("--reason", required=True)
    waive.add_argument("--requested-by", required=True)
    waive.add_argument("--approver", required=True, help="someone other than the requester")
    waive.add_argument("--expires", required=True, metavar="YYYY-MM-DD", help="the first day it no longer applies")
    waive.add_argument("--policy", help="the service's gate.yaml, for waivers.max_days (default: the policy of "
                                        "the service's latest run, else 90 days)")
    waive.set_defaults(func=cmd_waive)

    waivers = sub.add_parser("waivers", help="list or revoke waivers")
    wsub = waivers.add_subparsers(dest="waivers_command", required=True)
    wlist = wsub.add_parser("list", help="every waiver with its status (active, expired, revoked)")
    wlist.add_argument("--service")
    wlist.add_argument("--json", action="store_true")
    wlist.set_defaults(func=cmd_waivers_list)
    revoke = wsub.add_parser("revoke", help="stop a waiver applying now")
    revoke.add_argument("id", type=int)
    revoke.add_argument("--by", required=True)
    revoke.add_argument("--reason", required=True)
    revoke.set_defaults(func=cmd_waivers_revoke)

    audit = sub.add_parser("audit", help="the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True)
    asub.add_parser("verify", help="recompute the hash chain: exit 0 intact, 1 broken").set_defaults(
        func=cmd_audit_verify)

    defects = sub.add_parser("defects", help="a service's defects and their remediation plans")
    dfsub = defects.add_subparsers(dest="defects_command", required=True)
    dlist = dfsub.add_parser("list", help="every defect of a service with its state")
    dlist.add_argument("--service", required=True)
    dlist.add_argument("--json", action="store_true")
    dlist.set_defaults(func=cmd_defects_list)
    plan = dfsub.add_parser("plan", help="record a defect's remediation plan and owner")
    plan.add_argument("fingerprint", help="the defect's fingerprint, or a unique prefix of 8+ characters")
    plan.add_argument("--service", required=True)
    plan.add_argument("--owner", required=True)
    plan.add_argument("--plan", required=True)
    plan.set_defaults(func=cmd_defects_plan)


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
    text = json.dumps(data, indent=2) if args.json else _describe(data)
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


def cmd_trigger(args: argparse.Namespace) -> int:
    from releasegate import trigger

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
    run_id = trigger.trigger(api, args.service, args.version, args.policy)
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
        print(_describe({"run_id": run_id, "service": args.service, "version": args.version, "report": "", **data}))
    return EXIT[data["decision"]]


def _describe(data: dict) -> str:
    lines = [f"{data['service']} {data['version']}: {data['decision']}  (run {data['run_id']})"]
    lines += [f"  - [{r['severity']}] {r['stage']}: {r['message']}{_where(r)}" for r in data["reasons"]]
    lines += [f"  waived #{w['id']} ({w['fingerprint'][:12]}) until {w['expires_on']}, approved by {w['approver']}: "
              f"{w['title']}" for w in data.get("waivers", [])]
    lines.append(f"  report: {data['report']}")
    return "\n".join(lines)


def _where(reason: dict) -> str:
    """Where a finding is (`app/db.py:12`, a test's node id), when its message does not already say."""
    where = reason.get("evidence") or ""
    return f" ({where})" if where and where not in reason["message"] else ""


def cmd_policy_check(args: argparse.Namespace) -> int:
    """Load and validate the policy, then check what it names (policy.check); --json prints one object either way."""
    from releasegate.pipeline import expected_stages
    from releasegate.policy import load_policy
    from releasegate.policy.check import check_policy
    from releasegate.redact import redact

    try:
        policy = load_policy(args.file)
    except PolicyError as exc:
        if not args.json:
            raise
        print(redact(json.dumps({"file": args.file, "valid": False, "decision": None, "error": str(exc),
                                 "problems": [], "notes": []}, indent=2)))
        return EXIT_CANNOT_START
    report = check_policy(policy, args.version)
    problems = [p.text(args.file) for p in report.problems]
    stages = [s.name + ("" if s.required else " (optional)") for s in expected_stages(policy)]
    if args.json:
        error = {"decision": None, "error": "\n".join(problems)} if problems else {}
        print(redact(json.dumps({"file": args.file, "valid": not problems, **error, "service": policy.service,
                                 "stages": stages, **report.as_dict()}, indent=2)))
        return EXIT_CANNOT_START if problems else 0
    for note in report.notes:
        print(f"{args.file}: note: {note}", file=sys.stderr)
    if problems:
        raise PolicyError("\n".join(problems))
    print(f"{args.file}: valid policy for service '{policy.service}'; stages: {', '.join(stages)}; "
          f"{len(report.checked)} file(s) and folder(s) found")
    return 0


def cmd_policy_schema(_args: argparse.Namespace) -> int:
    from releasegate.policy import schema_json

    sys.stdout.write(schema_json())
    return 0


def cmd_db_upgrade(_args: argparse.Namespace) -> int:
    from persistence.migrate import upgrade
    from releasegate.store import database_url

    upgrade(database_url())
    print("database at the newest revision")
    return 0


def cmd_db_downgrade(args: argparse.Namespace) -> int:
    from persistence.migrate import downgrade
    from releasegate.store import database_url

    downgrade(database_url(), args.revision)
    print(f"database downgraded to {args.revision}")
    return 0


def cmd_db_current(_args: argparse.Namespace) -> int:
    from persistence.migrate import current
    from releasegate.store import database_url

    print(current(database_url()) or "(empty database)")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from releasegate import store

    with store.unit_of_work() as uow:
        rows = uow.runs.latest(service=args.service, version=args.version, limit=args.limit)
    return _print_rows(rows, args.json, lambda row: f"{row['started_at']}  {row['service']} {row['version']}  "
                                                    f"{row.get('decision') or row['status']}  {row['run_id']}")


def _print_rows(rows: list[dict], as_json: bool, line: Callable[[dict], str]) -> int:
    """A listing: one JSON array, or one line per row."""
    if as_json:
        print(json.dumps(rows, indent=2, default=str))
    else:
        for row in rows:
            print(line(row))
    return 0


def cmd_db_backup(args: argparse.Namespace) -> int:
    from releasegate import admin

    print(f"backup written: {admin.backup(args.file)}")
    return 0


def cmd_db_restore(args: argparse.Namespace) -> int:
    from releasegate import admin

    admin.restore(args.file)
    print(f"database restored from {args.file}")
    return 0


def cmd_db_purge(args: argparse.Namespace) -> int:
    from releasegate import admin

    print(admin.describe_purge(admin.purge(args.older_than)))
    return 0


def cmd_waive(args: argparse.Namespace) -> int:
    from releasegate import admin

    waiver = admin.waive(args.fingerprint, args.service, args.reason, args.requested_by, args.approver,
                         admin.parse_day(args.expires), policy=args.policy)
    print(waiver["id"])
    return 0


def cmd_waivers_list(args: argparse.Namespace) -> int:
    from releasegate import admin

    rows = admin.list_waivers(service=args.service)
    return _print_rows(rows, args.json, lambda w: f"#{w['id']}  {w['status']:<8} {w['service']}  "
                                                  f"{w['fingerprint'][:16]}  until {w['expires_on']}  approved by "
                                                  f"{w['approver']} for {w['requested_by']}: {w['reason']}")


def cmd_waivers_revoke(args: argparse.Namespace) -> int:
    from releasegate import admin

    waiver = admin.revoke_waiver(args.id, args.by, args.reason)
    print(f"waiver #{waiver['id']} revoked by {waiver['revoked_by']}")
    return 0


def cmd_audit_verify(_args: argparse.Namespace) -> int:
    from releasegate import admin

    result = admin.verify_audit()
    print(admin.describe_audit(result))
    return 0 if result["ok"] else 1


def cmd_defects_list(args: argparse.Namespace) -> int:
    from releasegate import admin

    return _print_rows(admin.list_defects(args.service), args.json, _defect_line)


def _defect_line(d: dict) -> str:
    plan = f"  owner {d['owner']}: {d['remediation']}" if d["owner"] else ""
    return (f"{d['fingerprint'][:16]}  {d['state']:<9} {d['severity']:<8} {d['stage']}: {d['title']}  "
            f"(seen {d['occurrences']}x, runs {d['first_run_id']} .. {d['last_run_id']}){plan}")


def cmd_defects_plan(args: argparse.Namespace) -> int:
    from releasegate import admin

    defect = admin.plan_defect(args.fingerprint, args.service, args.owner, args.plan)
    print(f"defect {defect['fingerprint'][:16]} of {args.service}: owner {defect['owner']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    from releasegate.redact import protect, redact

    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    for handler in logging.getLogger().handlers:
        protect(handler)  # whatever logs, through whichever logger: redacted before it is written
    logging.getLogger("alembic").setLevel(logging.WARNING)  # schema checks on start: not news to an operator
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PolicyError as exc:
        print(redact(f"releasegate: policy error: {exc}"), file=sys.stderr)
        return EXIT_CANNOT_START
    except ReleaseGateError as exc:
        print(redact(f"releasegate: {exc}"), file=sys.stderr)
        return EXIT_CANNOT_START
    except Exception as exc:  # noqa: BLE001 - a fault (a database that is gone...) is a message, not a traceback
        return _failed(args, exc)


def _failed(args: argparse.Namespace, exc: BaseException) -> int:
    """One line naming the fault (the traceback with RELEASEGATE_DEBUG=1); exit 3 for `run`, else 2."""
    import os
    import traceback

    from releasegate.pipeline import cause
    from releasegate.redact import redact

    print(f"releasegate: {args.command} failed: {cause(exc)}", file=sys.stderr)
    if os.environ.get("RELEASEGATE_DEBUG"):
        print(redact("".join(traceback.format_exception(exc))), file=sys.stderr)
    return EXIT["INCONCLUSIVE"] if args.command == "run" else EXIT_CANNOT_START


if __name__ == "__main__":
    sys.exit(main())
