"""`policy check` (a gate.yaml and what it names, without running anything) and `policy schema`."""

from __future__ import annotations

import argparse
import json
import sys

from releasegate.cli.output import EXIT_CANNOT_START
from releasegate.domain.errors import PolicyError


def add_policy_commands(sub) -> None:
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
