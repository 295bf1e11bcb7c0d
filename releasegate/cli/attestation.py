"""`attestation verify`: does a run's signed statement still hold (its signature, and every evidence file it covers)?"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from releasegate.cli.output import EXIT_CANNOT_START


def add_attestation_commands(sub) -> None:
    attestation = sub.add_parser("attestation", help="the signed statement of a run's verdict")
    commands = attestation.add_subparsers(dest="attestation_command", required=True)
    verify = commands.add_parser(
        "verify", help="check an attestation.intoto.json and the evidence files it covers",
        description="Exit codes: 0 the signature and every evidence file it covers are intact, 1 they are not "
                    "(the changed or missing file is named), 2 the key or the attestation cannot be read.")
    verify.add_argument("file", type=Path, help="the attestation.intoto.json of a run's evidence folder")
    verify.add_argument("--key", type=Path, required=True, help="the PEM public key of the signing key")
    verify.set_defaults(func=cmd_attestation_verify)


def cmd_attestation_verify(args: argparse.Namespace) -> int:
    from releasegate.exports.attestation import SigningError, verify

    try:
        problems, predicate = verify(args.file, args.key)
    except SigningError as exc:
        print(f"releasegate: attestation verify: {exc}", file=sys.stderr)
        return EXIT_CANNOT_START
    for problem in problems:
        print(f"FAILED {problem}", file=sys.stderr)
    if problems:
        return 1
    about = {k: "?" for k in ("decision", "service", "version", "run_id", "policy_digest",
                              "evidence_manifest_sha256")} | predicate.get("releasegate", {})
    print(f"verified: {about['decision']} for {about['service']} {about['version']} (run {about['run_id']}); "
          f"policy {about['policy_digest']}; evidence manifest sha256 {about['evidence_manifest_sha256']}")
    return 0
