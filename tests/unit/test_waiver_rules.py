"""Waiver rules without a database: identities that cannot be faked by how they are written, bounded expiry."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from releasegate.domain.waiver_rules import (
    DEFAULT_MAX_DAYS,
    applies,
    caller_identity,
    canonical_identity,
    check_expiry,
    check_grant,
    check_no_overlap,
    check_not_revoked,
    check_revoke,
    same_person,
    status_at,
)

T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SOON = date(2026, 12, 1)


def grant(requested_by="alice", approver="bob", expires_on=SOON, reason="not exposed until 2.0", max_days=90):
    return check_grant(reason, requested_by, approver, expires_on, T0, max_days)


@pytest.mark.parametrize("written", [
    "bob", "Bob", "  BOB ", "bob\u200b", "b\u200do\u200db", "\ufeffbob", "bo\u2060b", "\u200ebob\u200f",
    "ｂｏｂ", "\U0001d41b\U0001d428\U0001d41b", "ＢＯＢ",
])
def test_ways_of_writing_bob_are_bob(written):
    assert canonical_identity(written) == "bob"


@pytest.mark.parametrize("approver", ["bob\u200b", "ｂｏｂ", "BOB", "b\u200db", " bob\ufeff "])
def test_self_approval_written_differently_is_refused(approver):
    requester = "b\u200db" if approver == "b\u200db" else "bob"
    with pytest.raises(ValueError, match="cannot approve their own waiver"):
        grant(requested_by=requester, approver=approver)


@pytest.mark.parametrize(("approver", "named"), [
    ("b\u043eb", "U+043E CYRILLIC SMALL LETTER O"),            # Cyrillic о
    ("\u0430lice", "U+0430 CYRILLIC SMALL LETTER A"),           # Cyrillic а
    ("b\u03bfb", "U+03BF GREEK SMALL LETTER OMICRON"),
    ("bob\u0301", "U+0301 COMBINING ACUTE ACCENT"),            # a mark NFKC cannot fold into ASCII
    ("bob\x1b[2K", "U+001B"),                                   # terminal escape
])
def test_identities_outside_printable_ascii_are_refused_naming_the_character(approver, named):
    with pytest.raises(ValueError, match="outside printable ASCII") as info:
        grant(requested_by="carol", approver=approver)
    assert named in str(info.value)
    assert "login name" in str(info.value)


def test_whitespace_is_collapsed_and_distinct_people_pass():
    accepted = grant(requested_by="Alice  Smith", approver="bob\tjones\n")

    assert (accepted.requested_by, accepted.approver) == ("alice smith", "bob jones")
    assert accepted.reason == "not exposed until 2.0"
    assert same_person("Alice\u00a0Smith", "alice smith")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"reason": "  "}, "needs a reason"),
    ({"reason": "x" * 2001}, "keep it to 2000"),
    ({"approver": "   "}, "needs both the person who requests it and the one who approves it"),
    ({"approver": "\u200b\u200b"}, "approver \\(--approver\\) is empty"),
    ({"approver": "b" * 201}, "at most 200 characters"),
    ({"expires_on": T0.date()}, "must expire on a later date"),
    ({"expires_on": T0.date() - timedelta(days=1)}, "must expire on a later date"),
])
def test_refusals_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        grant(**kwargs)


def test_expiry_far_in_the_future_is_refused_naming_the_limit_and_the_last_allowed_day():
    with pytest.raises(ValueError) as info:
        grant(expires_on=date(9999, 12, 31))

    message = str(info.value)
    assert "at most 90 days (waivers.max_days" in message
    assert "on or before 2027-02-22" in message


def test_expiry_limit_is_inclusive_and_follows_the_policy():
    last = T0.date() + timedelta(days=DEFAULT_MAX_DAYS)

    assert grant(expires_on=last).expires_on == last
    with pytest.raises(ValueError, match="at most 90 days"):
        grant(expires_on=last + timedelta(days=1))
    with pytest.raises(ValueError, match="at most 7 days"):
        grant(expires_on=T0.date() + timedelta(days=8), max_days=7)
    assert grant(expires_on=T0.date() + timedelta(days=365), max_days=365).expires_on.year == 2027


@pytest.mark.parametrize("max_days", [0, -1, 366, True, 1.5])
def test_limit_itself_is_bounded(max_days):
    with pytest.raises(ValueError, match="from 1 to 365"):
        check_expiry(SOON, T0, max_days)


def test_the_day_is_taken_in_utc():
    still_24th_in_utc = datetime(2026, 11, 25, 1, 0, tzinfo=timezone(timedelta(hours=2)))
    check_expiry(date(2026, 11, 25), still_24th_in_utc)
    with pytest.raises(ValueError, match="not after today \\(2026-11-25, UTC\\)"):
        check_expiry(date(2026, 11, 25), datetime(2026, 11, 25, 0, 30, tzinfo=UTC))


def test_revoke_needs_a_valid_revoker_and_a_reason():
    assert check_revoke(" Carol\u200b ", " fixed in 1.4.3 ") == ("carol", "fixed in 1.4.3")
    with pytest.raises(ValueError, match="--by, --reason"):
        check_revoke("carol", " ")
    with pytest.raises(ValueError, match="outside printable ASCII"):
        check_revoke("c\u0430rol", "typo")


def test_caller_identity_records_os_user_and_ci_logins_that_are_set():
    environ = {"GITHUB_ACTOR": "octo\u200bcat\n", "GITLAB_USER_LOGIN": " ", "BUILD_USER": "jenkins-bob",
               "HOME": "/root"}

    assert caller_identity(environ, "ci") == {"os_user": "ci", "github_actor": "octocat",
                                              "build_user": "jenkins-bob"}
    assert caller_identity({}, None) == {}
    assert len(caller_identity({"BUILD_USER": "x" * 500}, None)["build_user"]) == 200


def stored(expires_on=SOON, revoked_at=None, fingerprint="f" * 32) -> dict:
    return {"id": 7, "fingerprint": fingerprint, "expires_on": expires_on, "revoked_at": revoked_at,
            "revoked_by": "carol" if revoked_at else None, "revoke_reason": "fixed" if revoked_at else None}


@pytest.mark.parametrize(("waiver", "at", "status"), [
    (stored(), T0, "active"),
    (stored(), datetime(2026, 11, 30, 23, 59, tzinfo=UTC), "active"),                       # the day before expiry
    (stored(), datetime(2026, 12, 1, 0, 0, tzinfo=UTC), "expired"),                          # from its first moment
    (stored(), datetime(2026, 12, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))), "active"),  # still Nov 30 in UTC
    (stored(revoked_at=T0), T0, "revoked"),                                                  # at once
    (stored(revoked_at=T0), datetime(2027, 1, 1, tzinfo=UTC), "revoked"),
])
def test_a_waiver_applies_until_its_expiry_day_in_utc_unless_revoked(waiver, at, status):
    assert status_at(waiver, at) == status
    assert applies(waiver, at) is (status == "active")


def test_one_live_waiver_per_finding():
    live = [stored(fingerprint="a" * 32), stored(fingerprint="b" * 32)]

    check_no_overlap(live, "orders", "c" * 32)
    with pytest.raises(ValueError, match="waiver #7 already covers bbbbbbbbbbbb of orders until 2026-12-01: revoke"):
        check_no_overlap(live, "orders", "b" * 32)


def test_a_revoked_waiver_cannot_be_revoked_again():
    check_not_revoked(stored())
    with pytest.raises(ValueError, match="waiver #7 was already revoked at 2026-11-24T12:00:00\\+00:00 by carol \\(fixed\\)"):
        check_not_revoked(stored(revoked_at=T0))
