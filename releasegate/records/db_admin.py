"""What the operator commands do to the gate database as a whole: retention (old runs and their evidence
folders purged), backup and restore.

Refusals are ``AdminError``s (``releasegate.records.admin``) that say what to do; the CLI turns them into exit 2.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from releasegate.context import gate_home
from releasegate.records import store
from releasegate.records.admin import AdminError, now, refusals


@dataclass
class PurgeOutcome:
    cutoff: datetime
    runs_deleted: list[dict[str, str]]
    kept: dict[str, int]
    removed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (folder, why it was left alone)


def purge(days: float, at: datetime | None = None) -> PurgeOutcome:
    """Delete runs started more than ``days`` ago that nothing protects, then their evidence folders."""
    from persistence.retention import purge as purge_rows

    if days < 0:
        raise AdminError(f"--older-than {days:g}: give a number of days, 0 or more (e.g. 90)")
    at = at or now()
    cutoff = at - timedelta(days=days)
    with store.unit_of_work() as uow:
        report = purge_rows(uow, cutoff, at=at)
        remaining = [Path(p) for p in uow.runs.evidence_dirs()]
        uow.commit()
    outcome = PurgeOutcome(cutoff, report.runs_deleted, report.kept)
    for run in report.runs_deleted:
        _remove_evidence(run["run_id"], run["evidence_dir"], remaining, outcome)
    return outcome


def _remove_evidence(run_id: str, folder: str, remaining: list[Path], outcome: PurgeOutcome) -> None:
    if not folder or not Path(folder).exists():
        return
    why = refuse_removal(run_id, Path(folder), remaining)
    if why:
        outcome.skipped.append((folder, why))
        return
    target = Path(folder).resolve()
    shutil.rmtree(target)
    outcome.removed.append(str(target))
    _prune_empty_parents(target.parent, evidence_root())


def evidence_root() -> Path:
    return gate_home() / "evidence"


def refuse_removal(run_id: str, folder: Path, remaining: list[Path]) -> str | None:
    """Why ``folder`` must not be deleted as run ``run_id``'s evidence, or None when it may."""
    if folder.is_symlink() or not folder.is_dir():
        return "not a plain folder (a symlink or a file)"
    target, root = folder.resolve(), evidence_root()
    if target in (Path.home(), Path(target.anchor), gate_home(), root) or target in gate_home().parents:
        return "a home, root, gate-home or evidence-root folder"
    if any(p.resolve() == target or target in p.resolve().parents for p in remaining):
        return "it holds the evidence of a run that is kept"
    if root not in target.parents and not _names_run(target, run_id):
        return (f"outside {root} and its verdict.json does not name run {run_id}: "
                "check it and remove it by hand if it is this run's evidence")
    return None


def _names_run(folder: Path, run_id: str) -> bool:
    try:
        return json.loads((folder / "verdict.json").read_text(encoding="utf-8")).get("run_id") == run_id
    except (OSError, ValueError, AttributeError):
        return False


def _prune_empty_parents(folder: Path, root: Path) -> None:
    while root in folder.parents and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def describe_purge(outcome: PurgeOutcome) -> str:
    kept = ", ".join(f"{n} {reason.replace('_', ' ')}" for reason, n in outcome.kept.items()) or "none"
    lines = [f"purged {len(outcome.runs_deleted)} run(s) started before {outcome.cutoff:%Y-%m-%d %H:%M} UTC; "
             f"removed {len(outcome.removed)} evidence folder(s); kept older runs: {kept}"]
    lines += [f"  left alone: {folder}: {why}" for folder, why in outcome.skipped]
    return "\n".join(lines)


def backup(file: str) -> Path:
    from persistence.backup import backup as backup_db

    with refusals():
        return backup_db(store.database_url(), file)


def restore(file: str) -> None:
    from persistence.backup import restore as restore_db

    with refusals():
        restore_db(store.database_url(), file)
