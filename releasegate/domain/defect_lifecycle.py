"""The defect lifecycle: what one run does to one defect of its service. Pure: no database, no clock.

A defect is one finding of one service (its fingerprint), carried across runs through five states::

    new ──seen again──> recurring ──not seen──> fixed ──seen again──> reopened
      └──seen while waived──> waived ──seen once the waiver ended──> recurring
                                └──not seen──> fixed

The rules, for a run ``run_id`` that started at ``seen_at``:

- first sighting: ``new``, or ``waived`` when a live waiver covers the fingerprint;
- seen again: ``waived`` while a waiver covers it; a ``waived`` defect no waiver covers any more is ``recurring``;
  a ``fixed`` one is ``reopened``; any other is ``recurring``. A run adds one occurrence however often it sees
  the defect (``last_run_id`` is the last run that saw it);
- not seen by a stage that completed (its evidence is in): an open or waived defect is ``fixed``, unless a run
  saw it later than this run started (``last_seen_at``): a late retry of an older run fixes nothing a newer
  run saw;
- a retry of the run that fixed a defect (``changed_run_id``) and now sees it undoes that "fixed": the defect
  is what it was before (``previous_state``), judged as seen by that run.

States are stored and shown as their values (``DefectState.new == "new"``), so rows and JSON keep their text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import Enum, StrEnum
from typing import Any


class DefectState(StrEnum):
    new = "new"
    recurring = "recurring"
    fixed = "fixed"
    reopened = "reopened"
    waived = "waived"


OPEN_STATES = frozenset({DefectState.new, DefectState.recurring, DefectState.reopened})
FIXABLE_STATES = OPEN_STATES | {DefectState.waived}  # a waived problem that goes away is fixed

# A defect seen again, no waiver covering it: the state it moves to, by the state it is judged from (the stored
# one; for a retry of the run that fixed it, the one before that "fixed").
SEEN_BY_ANOTHER_RUN: Mapping[str, DefectState] = {   # a run that has not counted it yet
    DefectState.new: DefectState.recurring,
    DefectState.recurring: DefectState.recurring,
    DefectState.reopened: DefectState.recurring,
    DefectState.waived: DefectState.recurring,      # its waiver expired or was revoked
    DefectState.fixed: DefectState.reopened,
}
SEEN_BY_THE_SAME_RUN: Mapping[str, DefectState] = {  # a retry of a run that counted it already
    DefectState.new: DefectState.new,
    DefectState.recurring: DefectState.recurring,
    DefectState.reopened: DefectState.reopened,
    DefectState.waived: DefectState.recurring,      # its waiver ended since
    DefectState.fixed: DefectState.fixed,
}


class Sighting(Enum):
    """What a run's evidence says about a defect."""

    seen = "seen"          # a finding with its fingerprint, no waiver covering it
    waived = "waived"      # a finding with its fingerprint, covered by a live waiver
    unseen = "unseen"      # no such finding, from a stage that completed


def transition(defect: Mapping[str, Any] | None, run_id: str, sighting: Sighting,
               seen_at: datetime) -> dict[str, Any]:
    """The defect's fields that change when run ``run_id`` (started at ``seen_at``) sights it: {} when none do.

    ``defect`` is the stored row (``state``, ``previous_state``, ``last_run_id``, ``changed_run_id``,
    ``last_seen_at``, ``occurrences``; states as ``DefectState`` or their text), or None for a fingerprint never
    seen before, which gets every field of a new defect. A ``state`` that differs from the stored one comes with
    ``previous_state`` and ``changed_run_id``.
    """
    if sighting is Sighting.unseen:
        return {} if defect is None else _unseen(defect, run_id, seen_at)
    waived = sighting is Sighting.waived
    if defect is None:
        return _first_sighting(run_id, waived, seen_at)
    return _seen_again(defect, run_id, waived, seen_at)


def _first_sighting(run_id: str, waived: bool, seen_at: datetime) -> dict[str, Any]:
    return {"state": DefectState.waived if waived else DefectState.new, "previous_state": None,
            "first_run_id": run_id, "last_run_id": run_id, "changed_run_id": run_id, "first_seen_at": seen_at,
            "last_seen_at": seen_at, "occurrences": 1}


def _seen_again(defect: Mapping[str, Any], run_id: str, waived: bool, seen_at: datetime) -> dict[str, Any]:
    state, counts = state_when_seen(defect, run_id, waived)
    if not counts and state == defect["state"]:
        return {}
    fields: dict[str, Any] = {"state": state, "last_run_id": run_id,
                              "last_seen_at": max(seen_at, defect["last_seen_at"])}
    if counts:
        fields["occurrences"] = defect["occurrences"] + 1
    return _moved(fields, defect, run_id)


def _unseen(defect: Mapping[str, Any], run_id: str, seen_at: datetime) -> dict[str, Any]:
    if defect["state"] not in FIXABLE_STATES or seen_at < defect["last_seen_at"]:
        return {}
    return _moved({"state": DefectState.fixed}, defect, run_id)


def _moved(fields: dict[str, Any], defect: Mapping[str, Any], run_id: str) -> dict[str, Any]:
    if fields["state"] != defect["state"]:
        fields |= {"previous_state": DefectState(defect["state"]), "changed_run_id": run_id}
    return fields


def state_when_seen(defect: Mapping[str, Any], run_id: str, waived: bool) -> tuple[DefectState, bool]:
    """(state after run ``run_id`` saw the defect, whether this sighting adds an occurrence)."""
    undo = defect["state"] == DefectState.fixed and defect["changed_run_id"] == run_id  # its earlier attempt fixed it
    base = defect["previous_state"] if undo else defect["state"]
    counts = defect["last_run_id"] != run_id  # not yet counted for this run
    if waived:
        return DefectState.waived, counts
    return (SEEN_BY_ANOTHER_RUN if counts else SEEN_BY_THE_SAME_RUN)[base], counts
