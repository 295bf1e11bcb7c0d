"""Faults of the gate's own steps (the database dropped, the disk full, a crash): each becomes an `error` result
of that step, named after it (`provision`, `gate:<step>`), so the verdict is INCONCLUSIVE with the fault as its
reason (docs/decisions/0009)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TypeVar

from releasegate.domain.errors import ReleaseGateError
from releasegate.domain.models import StageResult, Status
from releasegate.redact import protect, redact
from releasegate.stages.base import now

_T = TypeVar("_T")
log = logging.getLogger("releasegate")
protect(log)  # every record the gate logs is redacted before any handler (CLI, Airflow task log) sees it
PROVISION = "provision"
GATE_KIND = "gate"  # results of the gate's own steps: a fault of the gate, not of a tool or the service



class RunNotStarted(ReleaseGateError):
    """The run could not be opened or recorded: nothing ran, so there is no verdict (the CLI exits 2)."""


def cause(exc: BaseException) -> str:
    """What went wrong, in one redacted line that says where: the database, the evidence folder, or the gate."""
    from sqlalchemy.exc import SQLAlchemyError

    from persistence.uow import first_line

    if isinstance(exc, SQLAlchemyError):
        what = f"the gate database failed ({first_line(exc)})"
    elif isinstance(exc, OSError):
        what = f"a file could not be written or read ({type(exc).__name__}: {exc})"
    else:
        what = f"{type(exc).__name__}: {exc}"
    return redact(" ".join(what.split())[:600])


def gate_fault(step: str, exc: BaseException | str, *, required: bool = True,
               started: datetime | None = None) -> StageResult:
    """An `error` result for a step of the gate that failed: it makes the verdict INCONCLUSIVE, naming the fault."""
    message = redact(exc) if isinstance(exc, str) else cause(exc)
    return StageResult(stage=f"gate:{step}", kind=GATE_KIND, status=Status.error, required=required,
                       started=started or now(), finished=now(), summary=f"gate step {step} failed",
                       error=f"{step}: {message}")


def attempt(faults: list[StageResult], step: str, work: Callable[[], _T]) -> _T | None:
    """`work()`, or None with a fault of `step` added to `faults`."""
    try:
        return work()
    except Exception as exc:  # noqa: BLE001 - any fault of a step becomes a reason of the verdict
        log.error("%s: %s", step, cause(exc))
        faults.append(gate_fault(step, exc))
        return None
