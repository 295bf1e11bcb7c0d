"""What a waiver must satisfy before it is stored: pure functions, no database.

Identities (requester, approver, revoker) are compared in one canonical form, so a name cannot be
faked by how it is written:

1. Unicode NFKC (fullwidth ``ｂｏｂ`` and mathematical ``𝐛𝐨𝐛`` become ``bob``);
2. invisible format characters (Unicode category Cf: zero-width space U+200B, zero-width joiner
   U+200D, byte-order mark U+FEFF, bidi controls ...) removed;
3. case folded, then NFKC again (``BOB`` and ``bob`` are one person);
4. runs of whitespace collapsed to one space, and the ends trimmed.

What is left must be printable ASCII (letters, digits, punctuation, spaces), or the identity is
refused: look-alike letters from other scripts (Cyrillic ``о`` in ``bоb``) cannot be told apart from
Latin ones reliably, so a login name or handle written in ASCII is what the gate asks for. The
canonical form is what is stored and compared.

A waiver lasts at most ``max_days`` (the policy's ``waivers.max_days``, default 90, at most 365). It applies
while it is not revoked and the day (UTC) is before its expiry date: it stops applying at once when revoked and
from the first moment (UTC) of its expiry date. One finding has at most one live waiver; a revoked waiver stays
revoked.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

DEFAULT_MAX_DAYS = 90
LIMIT_MAX_DAYS = 365
MAX_IDENTITY_CHARS = 200
MAX_REASON_CHARS = 2000
# where the CI systems the gate knows put the login of whoever started the job
CI_IDENTITY_VARIABLES = ("GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER")


@dataclass(frozen=True)
class Grant:
    """A waiver request that passed every rule, with its identities in canonical form."""

    reason: str
    requested_by: str
    approver: str
    expires_on: date


def utc_day(at: datetime) -> date:
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).date()


def canonical_identity(text: str, role: str = "identity") -> str:
    """The one form an identity is stored and compared in; ValueError saying what to write instead."""
    folded = unicodedata.normalize("NFKC", text)
    folded = "".join(ch for ch in folded if unicodedata.category(ch) != "Cf")
    folded = unicodedata.normalize("NFKC", folded.casefold())
    folded = " ".join(folded.split())
    if not folded:
        raise ValueError(f"{role} is empty: give the person's login name, e.g. alice")
    foreign = [ch for ch in folded if not (" " <= ch <= "~")]
    if foreign:
        shown = ", ".join(_describe_char(ch) for ch in dict.fromkeys(foreign))
        raise ValueError(f"{role} {text!r} has characters outside printable ASCII ({shown}): write the person's "
                         "login name in plain ASCII letters, digits and punctuation (look-alike letters from "
                         "other scripts are refused, so a name cannot be faked)")
    if len(folded) > MAX_IDENTITY_CHARS:
        raise ValueError(f"{role} is {len(folded)} characters long: give a login name of at most "
                         f"{MAX_IDENTITY_CHARS} characters")
    return folded


def _describe_char(ch: str) -> str:
    name = unicodedata.name(ch, "unnamed character")
    return f"U+{ord(ch):04X} {name}"


def same_person(a: str, b: str) -> bool:
    """Whether two identities name the same person once canonical (both must be valid identities)."""
    return canonical_identity(a) == canonical_identity(b)


def check_max_days(max_days: int) -> int:
    if isinstance(max_days, bool) or not isinstance(max_days, int) or not 1 <= max_days <= LIMIT_MAX_DAYS:
        raise ValueError(f"waivers.max_days {max_days!r}: give a whole number of days from 1 to {LIMIT_MAX_DAYS}")
    return max_days


def check_grant(reason: str, requested_by: str, approver: str, expires_on: date, at: datetime,
                max_days: int = DEFAULT_MAX_DAYS) -> Grant:
    """The waiver as it may be stored, or ValueError saying what to change."""
    request = check_request(reason, requested_by, expires_on, at, max_days)
    if not approver.strip():
        raise ValueError("a waiver needs both the person who requests it and the one who approves it")
    approving = canonical_identity(approver, "approver (--approver)")
    if request.requested_by == approving:
        raise ValueError(f"{approving!r} cannot approve their own waiver (requester {requested_by!r} and approver "
                         f"{approver!r} are the same person once written alike): ask someone else (a second "
                         "person who accepts the risk) to be the approver")
    return Grant(request.reason, request.requested_by, approving, expires_on)


def check_request(reason: str, requested_by: str, expires_on: date, at: datetime,
                  max_days: int = DEFAULT_MAX_DAYS) -> Grant:
    """A waiver request as it may be stored (everything a grant needs but the approver, who is ``""``), or
    ValueError saying what to change."""
    reason = reason.strip()
    if not reason:
        raise ValueError("a waiver needs a reason: say why the finding may ship and what limits the risk "
                         "(e.g. 'endpoint not exposed until 2.0; fix tracked in ORD-123')")
    if len(reason) > MAX_REASON_CHARS:
        raise ValueError(f"the reason is {len(reason)} characters long: keep it to {MAX_REASON_CHARS} and link "
                         "the ticket for the rest")
    if not requested_by.strip():
        raise ValueError("a waiver needs both the person who requests it and the one who approves it")
    requester = canonical_identity(requested_by, "requester (--requested-by)")
    check_expiry(expires_on, at, max_days)
    return Grant(reason, requester, "", expires_on)


def check_expiry(expires_on: date, at: datetime, max_days: int = DEFAULT_MAX_DAYS) -> None:
    today = utc_day(at)
    if expires_on <= today:
        raise ValueError(f"expiry {expires_on.isoformat()} is not after today ({today.isoformat()}, UTC): "
                         "a waiver must expire on a later date — pick one, e.g. two weeks ahead")
    latest = today + timedelta(days=check_max_days(max_days))
    if expires_on > latest:
        raise ValueError(f"expiry {expires_on.isoformat()} is {(expires_on - today).days} days away: a waiver lasts "
                         f"at most {max_days} days (waivers.max_days in the service's gate.yaml) — pick a date "
                         f"on or before {latest.isoformat()}, and renew it then if the risk is still accepted")


def applies(waiver: Mapping[str, Any], at: datetime) -> bool:
    """Whether a stored waiver covers its finding at ``at``: not revoked, and ``at``'s day (UTC) before its expiry."""
    return waiver["revoked_at"] is None and utc_day(at) < waiver["expires_on"]


def status_at(waiver: Mapping[str, Any], at: datetime) -> str:
    """``active``, ``expired`` or ``revoked``: what a listing shows for the waiver at ``at``."""
    if waiver["revoked_at"] is not None:
        return "revoked"
    return "active" if applies(waiver, at) else "expired"


def check_no_overlap(live: Iterable[Mapping[str, Any]], service: str, fingerprint: str) -> None:
    """ValueError when one of the service's ``live`` waivers already covers the fingerprint."""
    for waiver in live:
        if waiver["fingerprint"] == fingerprint:
            raise ValueError(f"waiver #{waiver['id']} already covers {fingerprint[:12]} of {service} until "
                             f"{waiver['expires_on'].isoformat()}: revoke it first to replace it")


def check_not_revoked(waiver: Mapping[str, Any]) -> None:
    """ValueError when the waiver was revoked already (a revocation is final and recorded once)."""
    if waiver["revoked_at"] is not None:
        raise ValueError(f"waiver #{waiver['id']} was already revoked at {waiver['revoked_at'].isoformat()} "
                         f"by {waiver['revoked_by']} ({waiver['revoke_reason']})")


def check_revoke(by: str, reason: str) -> tuple[str, str]:
    """(canonical revoker, reason), or ValueError saying what to change."""
    if not by.strip() or not reason.strip():
        raise ValueError("say who revokes the waiver and why (--by, --reason)")
    return canonical_identity(by, "revoker (--by)"), reason.strip()


def caller_identity(environ: Mapping[str, str], os_user: str | None) -> dict[str, str]:
    """Who ran the command, as the machine knows it: the OS user and the CI's login variables that are set.

    Recorded with each grant and revoke in the audit trail; never used to refuse (a CI job may act for
    a release manager). Values are kept printable and short, never interpreted.
    """
    found = {"os_user": os_user} if os_user else {}
    found |= {name.lower(): environ[name] for name in CI_IDENTITY_VARIABLES if environ.get(name, "").strip()}
    return {key: _printable(value) for key, value in found.items()}


def _printable(value: str) -> str:
    kept = "".join(ch for ch in value if unicodedata.category(ch)[0] != "C")
    return " ".join(kept.split())[:MAX_IDENTITY_CHARS]
