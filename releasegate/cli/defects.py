"""Defects, waivers and the audit trail: `waive`, `waivers list|revoke`, `audit verify`, `defects list|plan`."""

from __future__ import annotations

import argparse

from releasegate.cli.output import print_rows


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
    ask = wsub.add_parser("request", help="ask for a waiver an approver grants later (the DAG's approval step)")
    ask.add_argument("fingerprint", help="the defect's fingerprint, or a unique prefix of 8+ characters")
    ask.add_argument("--service", required=True)
    ask.add_argument("--reason", required=True)
    ask.add_argument("--requested-by", required=True)
    ask.add_argument("--expires", required=True, metavar="YYYY-MM-DD", help="the first day it no longer applies")
    ask.add_argument("--policy", help="the service's gate.yaml, for waivers.max_days")
    ask.set_defaults(func=cmd_waivers_request)
    asked = wsub.add_parser("requests", help="waiver requests waiting for an approver")
    asked.add_argument("--service")
    asked.add_argument("--json", action="store_true")
    asked.set_defaults(func=cmd_waivers_requests)

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


def cmd_waive(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    waiver = admin.waive(args.fingerprint, args.service, args.reason, args.requested_by, args.approver,
                         admin.parse_day(args.expires), policy=args.policy)
    print(waiver["id"])
    return 0


def cmd_waivers_list(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    rows = admin.list_waivers(service=args.service)
    return print_rows(rows, args.json, lambda w: f"#{w['id']}  {w['status']:<8} {w['service']}  "
                                                 f"{w['fingerprint'][:16]}  until {w['expires_on']}  approved by "
                                                 f"{w['approver']} for {w['requested_by']}: {w['reason']}")


def cmd_waivers_revoke(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    waiver = admin.revoke_waiver(args.id, args.by, args.reason)
    print(f"waiver #{waiver['id']} revoked by {waiver['revoked_by']}")
    return 0


def cmd_waivers_request(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    request = admin.request_waiver(args.fingerprint, args.service, args.reason, args.requested_by,
                                   admin.parse_day(args.expires), policy=args.policy)
    print(f"waiver request #{request['id']} for {request['fingerprint'][:16]} waits for an approver "
          "(the approval step of a release_gate run, or `releasegate waive`)")
    return 0


def cmd_waivers_requests(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    rows = admin.pending_waiver_requests(service=args.service)
    return print_rows(rows, args.json, lambda r: f"#{r['id']}  {r['service']}  {r['fingerprint'][:16]}  until "
                                                 f"{r['expires_on']}  requested by {r['requested_by']}: {r['reason']}")


def cmd_audit_verify(_args: argparse.Namespace) -> int:
    from releasegate.records import admin

    result = admin.verify_audit()
    print(admin.describe_audit(result))
    return 0 if result["ok"] else 1


def cmd_defects_list(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    return print_rows(admin.list_defects(args.service), args.json, _defect_line)


def _defect_line(d: dict) -> str:
    plan = f"  owner {d['owner']}: {d['remediation']}" if d["owner"] else ""
    return (f"{d['fingerprint'][:16]}  {d['state']:<9} {d['severity']:<8} {d['stage']}: {d['title']}  "
            f"(seen {d['occurrences']}x, runs {d['first_run_id']} .. {d['last_run_id']}){plan}")


def cmd_defects_plan(args: argparse.Namespace) -> int:
    from releasegate.records import admin

    defect = admin.plan_defect(args.fingerprint, args.service, args.owner, args.plan)
    print(f"defect {defect['fingerprint'][:16]} of {args.service}: owner {defect['owner']}")
    return 0
