"""The defect lifecycle without a database: what one run's sighting does to a stored defect, as a table of cases."""

from datetime import UTC, datetime, timedelta

import pytest

from releasegate.domain.defect_lifecycle import DefectState, Sighting, transition

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
T1, T2 = T0 + timedelta(days=1), T0 + timedelta(days=2)
NEW, RECURRING, FIXED, REOPENED, WAIVED = (DefectState.new, DefectState.recurring, DefectState.fixed,
                                           DefectState.reopened, DefectState.waived)
SEEN, SEEN_WAIVED, UNSEEN = Sighting.seen, Sighting.waived, Sighting.unseen


def stored(state: str, previous: str | None = None, last_run: str = "r1", changed_run: str = "r1",
           last_seen: datetime = T1, occurrences: int = 1) -> dict:
    """A defect as the table holds it (states as text)."""
    return {"state": state, "previous_state": previous, "last_run_id": last_run, "changed_run_id": changed_run,
            "last_seen_at": last_seen, "occurrences": occurrences}


def moved(to: DefectState, came_from: DefectState, run: str = "r2", **fields) -> dict:
    return {"state": to, "previous_state": came_from, "changed_run_id": run, **fields}


def counted(run: str = "r2", seen_at: datetime = T2, occurrences: int = 2) -> dict:
    return {"last_run_id": run, "last_seen_at": seen_at, "occurrences": occurrences}


FIRST = {"previous_state": None, "first_run_id": "r2", "last_run_id": "r2", "changed_run_id": "r2",
         "first_seen_at": T2, "last_seen_at": T2, "occurrences": 1}

CASES = [
    # (what happens, stored defect, run, sighting, run started at, fields that change)
    ("first sighting is new", None, "r2", SEEN, T2, {"state": NEW, **FIRST}),
    ("first sighting under a waiver is waived", None, "r2", SEEN_WAIVED, T2, {"state": WAIVED, **FIRST}),
    ("never seen and not seen: nothing", None, "r2", UNSEEN, T2, {}),
    ("new seen by another run recurs", stored("new"), "r2", SEEN, T2, moved(RECURRING, NEW, **counted())),
    ("recurring seen again counts once more", stored("recurring", "new"), "r2", SEEN, T2,
     {"state": RECURRING, **counted()}),
    ("reopened seen again recurs", stored("reopened", "fixed"), "r2", SEEN, T2, moved(RECURRING, REOPENED, **counted())),
    ("a retry of the run that saw it: nothing", stored("recurring", "new", last_run="r2"), "r2", SEEN, T2, {}),
    ("seen under a waiver is waived", stored("recurring", "new"), "r2", SEEN_WAIVED, T2,
     moved(WAIVED, RECURRING, **counted())),
    ("waived seen under its waiver stays waived", stored("waived", "new"), "r2", SEEN_WAIVED, T2,
     {"state": WAIVED, **counted()}),
    ("waiver ended: waived seen recurs", stored("waived", "new"), "r2", SEEN, T2, moved(RECURRING, WAIVED, **counted())),
    ("waiver ended before a retry: recurs without counting", stored("waived", "new", last_run="r2"), "r2", SEEN, T2,
     moved(RECURRING, WAIVED, last_run_id="r2", last_seen_at=T2)),
    ("new not seen by a completed stage is fixed", stored("new"), "r2", UNSEEN, T2, moved(FIXED, NEW)),
    ("recurring not seen is fixed", stored("recurring", "new"), "r2", UNSEEN, T2, moved(FIXED, RECURRING)),
    ("waived not seen is fixed", stored("waived", "new"), "r2", UNSEEN, T2, moved(FIXED, WAIVED)),
    ("fixed not seen stays fixed", stored("fixed", "new"), "r2", UNSEEN, T2, {}),
    ("fixed seen again is reopened", stored("fixed", "recurring", changed_run="r1"), "r2", SEEN, T2,
     moved(REOPENED, FIXED, **counted())),
    ("a retry of the run that fixed it undoes its own fix",
     stored("fixed", "recurring", last_run="r1", changed_run="r2", last_seen=T1, occurrences=1), "r2", SEEN, T2,
     moved(RECURRING, FIXED, **counted())),
    ("a retry that fixed what its first attempt saw undoes it without counting again",
     stored("fixed", "recurring", last_run="r2", changed_run="r2", last_seen=T2, occurrences=2), "r2", SEEN, T2,
     moved(RECURRING, FIXED, last_run_id="r2", last_seen_at=T2)),
    ("a late older run fixes nothing a newer run saw", stored("recurring", "new", last_run="r2", last_seen=T2), "r0",
     UNSEEN, T0, {}),
    ("a late older run that sees it counts, keeping the newer sighting's time",
     stored("recurring", "new", last_run="r2", last_seen=T2, occurrences=2), "r0", SEEN, T0,
     {"state": RECURRING, **counted(run="r0", seen_at=T2, occurrences=3)}),
]


@pytest.mark.parametrize(("defect", "run_id", "sighting", "seen_at", "expected"), [case[1:] for case in CASES],
                         ids=[case[0] for case in CASES])
def test_transition(defect, run_id, sighting, seen_at, expected):
    assert transition(defect, run_id, sighting, seen_at) == expected


def test_states_are_enum_members_that_keep_their_stored_text():
    fields = transition(stored("new"), "r2", Sighting.unseen, T2)

    assert type(fields["state"]) is DefectState and type(fields["previous_state"]) is DefectState
    assert (fields["state"], f"{fields['state']}", str(fields["previous_state"])) == ("fixed", "fixed", "new")
    assert [state.value for state in DefectState] == ["new", "recurring", "fixed", "reopened", "waived"]


def test_the_stored_defect_is_not_changed():
    defect = stored("recurring", "new")
    before = dict(defect)

    transition(defect, "r2", Sighting.seen, T2)

    assert defect == before
