"""`notify --pending`: send again the Slack notifications that were not delivered."""

from __future__ import annotations

import argparse

from releasegate.cli.output import print_rows


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
    from releasegate.notify.slack_outbox import deliver_pending

    results = deliver_pending(service=args.service)
    print_rows(results, args.json, lambda r: f"{r['service']}  run {r['run_id']}  {r['channel']}: {r['status']} "
                                             f"({r['attempts']} attempt(s) in all){_why(r)}")
    return 0 if all(r["status"] == "sent" for r in results) else 1


def _why(result: dict) -> str:
    return f" — {result['error']}" if result.get("error") else ""
