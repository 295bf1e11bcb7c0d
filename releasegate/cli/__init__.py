"""`releasegate`: the gate without a scheduler, with an exit-code contract.

run: 0 GO, 1 NO_GO, 3 INCONCLUSIVE, 2 the gate could not start (bad policy, bad arguments).

- `entry`: `main`, the console script; `parser`: `build_parser`, every command in `--help`'s order
- one module per group of commands: `run` (run, trigger, runs), `policy`, `db`, `defects` (waive, waivers,
  audit, defects), `notify`
- `output`: the exit codes and what a command prints
"""

from releasegate.cli.entry import main
from releasegate.cli.output import EXIT, EXIT_CANNOT_START
from releasegate.cli.parser import build_parser

__all__ = ["EXIT", "EXIT_CANNOT_START", "build_parser", "main"]
