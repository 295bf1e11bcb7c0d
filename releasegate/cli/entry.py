"""`releasegate`'s entry point: logs redacted, arguments parsed, the command run, any error an exit code."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from releasegate.cli.output import EXIT, EXIT_CANNOT_START
from releasegate.cli.parser import build_parser
from releasegate.domain.errors import PolicyError, ReleaseGateError


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
