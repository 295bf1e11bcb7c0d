"""What the service, its dependencies and the proxies print: a private file under the gate's home while the run
is on (a service may print a secret at startup), copied redacted into `provision/` in the evidence once the
processes are stopped."""

from __future__ import annotations

import hashlib
from pathlib import Path

from releasegate.context import RunContext, gate_home


def private_log(evidence_log: Path) -> Path:
    """Where a process's raw output goes: a private folder under the gate's home, one per evidence folder."""
    folder = Path(evidence_log).parent.resolve()
    private = gate_home() / "logs" / hashlib.sha256(str(folder).encode("utf-8")).hexdigest()[:16]
    private.mkdir(parents=True, exist_ok=True, mode=0o700)
    return private / Path(evidence_log).name


def read_log(evidence_log: Path) -> str:
    """A process's output so far, redacted (from its private file while the run is on, else the evidence copy)."""
    from releasegate.redact import redact

    for path in (private_log(evidence_log), Path(evidence_log)):
        if path.is_file():
            return redact(path.read_text(encoding="utf-8", errors="replace"))
    return ""


def publish_logs(ctx: RunContext) -> list[Path]:
    """Copy every private log of the run into `provision/` in the evidence, redacted; then delete the private file.

    Call it once the processes are stopped (teardown); a later call finds nothing new and changes nothing."""
    from releasegate.redact import redact_file

    folder = ctx.evidence / "provision"
    private = private_log(folder / "-").parent
    published = []
    for raw in sorted(private.iterdir()):
        redact_file(raw, folder / raw.name)
        raw.unlink()
        published.append(folder / raw.name)
    private.rmdir()
    return published


def tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])[-800:]
