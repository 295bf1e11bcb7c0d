"""The `releasegate` command line: every command and its arguments, in the order `--help` lists them."""

from __future__ import annotations

import argparse

from releasegate.cli.attestation import add_attestation_commands
from releasegate.cli.db import add_db_commands
from releasegate.cli.defects import add_admin_commands
from releasegate.cli.notify import add_notify_command
from releasegate.cli.policy import add_policy_commands
from releasegate.cli.run import add_run_command, add_runs_command, add_trigger_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="releasegate", description="Release gate for backend services.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_run_command(sub)
    add_trigger_command(sub)
    add_policy_commands(sub)
    add_db_commands(sub)
    add_runs_command(sub)
    add_admin_commands(sub)
    add_notify_command(sub)
    add_attestation_commands(sub)
    return parser
