"""`releasegate`: the gate without a scheduler, with an exit-code contract.

run: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 the gate could not start (bad policy, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence

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

    policy = sub.add_parser("policy", help="check a policy or print its JSON schema")
    psub = policy.add_subparsers(dest="policy_command", required=True)
    check = psub.add_parser("check", help="validate a gate.yaml")
    check.add_argument("file")
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

    runs = sub.add_parser("runs", help="recent gate runs and their verdicts")
    runs.add_argument("--service")
    runs.add_argument("--version")
    runs.add_argument("--limit", type=int, default=20)
    runs.add_argument("--json", action="store_true")
    runs.set_defaults(func=cmd_runs)
    return parser


def cmd_run(args: argparse.Namespace) -> int:
    from releasegate.pipeline import run_gate

    progress = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    outcome = run_gate(args.policy, args.version, evidence_dir=args.evidence_dir, progress=progress)
    if args.json:
        print(json.dumps(outcome.as_json(), indent=2))
    else:
        print(_describe(outcome.as_json()))
    return EXIT[outcome.verdict.decision.value]


def _describe(data: dict) -> str:
    lines = [f"{data['service']} {data['version']}: {data['decision']}  (run {data['run_id']})"]
    lines += [f"  - [{r['severity']}] {r['stage']}: {r['message']}" for r in data["reasons"]]
    lines.append(f"  report: {data['report']}")
    return "\n".join(lines)


def cmd_policy_check(args: argparse.Namespace) -> int:
    from releasegate.pipeline import expected_stages
    from releasegate.policy import load_policy

    policy = load_policy(args.file)
    stages = ", ".join(s.name + ("" if s.required else " (optional)") for s in expected_stages(policy))
    print(f"{args.file}: valid policy for service '{policy.service}'; stages: {stages}")
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
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    for row in rows:
        print(f"{row['started_at']}  {row['service']} {row['version']}  {row.get('decision') or row['status']}"
              f"  {row['run_id']}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except PolicyError as exc:
        print(f"releasegate: policy error: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    except ReleaseGateError as exc:
        print(f"releasegate: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START


if __name__ == "__main__":
    sys.exit(main())
