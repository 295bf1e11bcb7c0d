"""One gate run: its id, the service and version, where its evidence and workspace live."""

from __future__ import annotations

import os
import re
import secrets
import shutil
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from releasegate.domain.errors import PolicyError
from releasegate.policy import Policy


class RunContext(BaseModel):
    """Small enough for XCom: everything a stage needs to find its inputs and write its evidence."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    service: str
    version: str
    policy_path: str
    evidence_dir: str
    workspace: str
    started: datetime

    @property
    def evidence(self) -> Path:
        return Path(self.evidence_dir)

    @property
    def source(self) -> Path:
        return Path(self.workspace)


def gate_home() -> Path:
    """$RELEASEGATE_HOME, else ~/.releasegate: the embedded default's database, evidence and workspaces."""
    return Path(os.environ.get("RELEASEGATE_HOME") or Path.home() / ".releasegate").resolve()


def new_run_id(started: datetime) -> str:
    return f"rg-{started:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def safe_name(text: str) -> str:
    """A folder name from any run id (Airflow's contain ':' and '+')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "run"


def open_run(policy: Policy, version: str, run_id: str | None = None, evidence_dir: str | Path | None = None,
             started: datetime | None = None) -> RunContext:
    """Create the run's evidence folder and its private copy of the service source."""
    started = started or datetime.now(UTC)
    run_id = run_id or new_run_id(started)
    folder = safe_name(run_id)
    evidence = Path(evidence_dir) if evidence_dir else gate_home() / "evidence" / policy.service / version / folder
    evidence.mkdir(parents=True, exist_ok=True)
    workspace = prepare_workspace(policy, version, gate_home() / "work" / folder)
    return RunContext(run_id=run_id, service=policy.service, version=version, policy_path=str(policy.path),
                      evidence_dir=str(evidence.resolve()), workspace=str(workspace), started=started)


def prepare_workspace(policy: Policy, version: str, target: Path) -> Path:
    source = policy.source_dir(version)
    if not source.is_dir():
        raise PolicyError(f"{policy.path}: source.path: {source} does not exist for version {version} — "
                          "check the version, or the path (relative to the policy; {version} is filled in)")
    if not policy.source.copy_to_workspace:
        return source
    if target.exists():
        shutil.rmtree(target)
    patterns = policy.source.exclude
    shutil.copytree(source, target, ignore=lambda _d, names: [n for n in names if any(fnmatch(n, p) for p in patterns)])
    return target.resolve()


def close_run(ctx: RunContext) -> None:
    """Remove the run's workspace copy (never the evidence, never the original source)."""
    work = Path(ctx.workspace)
    if gate_home() / "work" in work.parents and work.exists():
        shutil.rmtree(work, ignore_errors=True)
