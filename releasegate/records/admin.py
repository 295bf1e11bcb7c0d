"""What the operator commands do to the gate's records: waivers, defect plans, the audit check.

Each function opens its own unit of work on the configured database (``store``) and raises
``AdminError`` with a message that says what to do when it is refused; the CLI turns that into exit 2.
A defect is named by its fingerprint, in full or by a unique prefix of ``MIN_PREFIX`` characters or more.
The database as a whole (retention, backup, restore) is ``releasegate.records.db_admin``'s.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from typing import Any

from releasegate.domain import waiver_rules
from releasegate.domain.errors import ReleaseGateError
from releasegate.records import store
from releasegate.redact import redact

log = logging.getLogger("releasegate")

MIN_PREFIX = 8
FULL_FINGERPRINT = re.compile(r"[0-9a-f]{32}")


class AdminError(ReleaseGateError):
    """An operator command was refused; the message says why and what to do instead."""


@contextmanager
def refusals() -> Iterator[None]:
    """Persistence says no with ValueError / LookupError / BackupError; the operator gets an AdminError."""
    from persistence.backup import BackupError

    try:
        yield
    except (ValueError, LookupError, BackupError) as exc:
        raise AdminError(str(exc)) from exc


def now() -> datetime:
    return datetime.now(UTC)


def local_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def resolve_fingerprint(uow, service: str, given: str) -> str:
    """The known defect fingerprint of ``service`` that ``given`` names in full or by a unique prefix."""
    known = [d["fingerprint"] for d in uow.defects.for_service(service)]
    given = given.strip()
    if given in known:
        return given
    if len(given) < MIN_PREFIX:
        raise AdminError(f"fingerprint {given!r} is too short: give at least {MIN_PREFIX} characters "
                         f"(`releasegate defects list --service {service}` shows them)")
    matches = [fp for fp in known if fp.startswith(given)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise AdminError(f"no defect of service {service!r} has a fingerprint starting {given!r} — "
                         f"`releasegate defects list --service {service}` shows the known ones")
    shown = ", ".join(fp[:16] for fp in matches[:5])
    raise AdminError(f"fingerprint prefix {given!r} is ambiguous for {service!r} ({len(matches)} defects: {shown}"
                     f"{', ...' if len(matches) > 5 else ''}) — give more characters")


def full_fingerprint(given: str) -> str:
    """A whole finding fingerprint as the gate writes them (32 lowercase hex digits), for a defect not seen yet."""
    given = given.strip()
    if not FULL_FINGERPRINT.fullmatch(given):
        raise AdminError(f"fingerprint {given!r} is not a full fingerprint: a finding not seen in this database yet "
                         "is named by all 32 hex digits of its fingerprint (the report, evidence.json)")
    return given


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise AdminError(f"--expires {text!r}: write a date as YYYY-MM-DD, e.g. 2026-12-31") from exc


def caller() -> dict[str, str]:
    """Who runs this command as the machine sees it (OS user, CI login variables): recorded, never trusted."""
    return waiver_rules.caller_identity(os.environ, local_user())


def waive(fingerprint: str, service: str, reason: str, requested_by: str, approver: str, expires: date,
          at: datetime | None = None, policy: str | None = None, unseen: bool = False) -> dict[str, Any]:
    """Grant a waiver under the rules of ``releasegate.domain.waiver_rules`` and the service's ``waivers.max_days``.

    ``unseen``: the finding need not be a known defect of this database yet (a fresh one, as in CI), so the
    fingerprint is taken as given, and must then be a full one; it starts waived when first seen.
    """
    at = at or now()
    max_days = waiver_max_days(service, policy)
    reason = redact(reason)  # at entry: the waivers table, the report and Slack show the reason
    with refusals():
        grant = waiver_rules.check_grant(reason, requested_by, approver, expires, at, max_days)
    with store.unit_of_work() as uow, refusals():
        full = full_fingerprint(fingerprint) if unseen else resolve_fingerprint(uow, service, fingerprint)
        waiver = uow.waivers.grant(service, full, grant.reason, grant.requested_by, grant.approver,
                                   grant.expires_on, at, caller=caller())
        uow.waiver_requests.fulfil(waiver, at)
        uow.commit()
    return waiver


def request_waiver(fingerprint: str, service: str, reason: str, requested_by: str, expires: date,
                   at: datetime | None = None, policy: str | None = None) -> dict[str, Any]:
    """Ask for a waiver an approver will grant later (the DAG's approval step of a NO_GO run whose blockers all
    have one, or ``waive``); the same rules as a grant, but for the approver."""
    at = at or now()
    max_days = waiver_max_days(service, policy)
    reason = redact(reason)  # at entry, as for a grant
    with refusals():
        asked = waiver_rules.check_request(reason, requested_by, expires, at, max_days)
    with store.unit_of_work() as uow, refusals():
        full = resolve_fingerprint(uow, service, fingerprint)
        request = uow.waiver_requests.request(service, full, asked.reason, asked.requested_by, asked.expires_on, at,
                                              caller=caller())
        uow.commit()
    return request


def pending_waiver_requests(service: str | None = None) -> list[dict[str, Any]]:
    with store.unit_of_work() as uow:
        return uow.waiver_requests.pending(service)


def waiver_max_days(service: str, policy: str | None = None) -> int:
    """``waivers.max_days`` of the service's policy: the one given, else the one its latest run used, else 90."""
    from releasegate.policy import load_policy

    if policy is not None:
        loaded = load_policy(policy)
        if loaded.service != service:
            raise AdminError(f"--policy {policy} is the policy of service {loaded.service!r}, not {service!r}: "
                             "pass the gate.yaml of the service the waiver is for")
        return loaded.waivers.max_days
    with store.unit_of_work() as uow:
        runs = uow.runs.latest(service=service, limit=1)
    if runs and runs[0].get("policy_path"):
        try:
            loaded = load_policy(runs[0]["policy_path"])
        except ReleaseGateError as exc:
            log.warning("waiver limit: the policy of %s's latest run (%s) does not load (%s); using the default "
                        "of %d days — pass --policy to use the service's own", service, runs[0]["policy_path"],
                        str(exc).splitlines()[0], waiver_rules.DEFAULT_MAX_DAYS)
        else:
            if loaded.service == service:
                return loaded.waivers.max_days
    return waiver_rules.DEFAULT_MAX_DAYS


def revoke_waiver(waiver_id: int, by: str, reason: str, at: datetime | None = None) -> dict[str, Any]:
    with refusals():
        revoker, why = waiver_rules.check_revoke(by, reason)
    with store.unit_of_work() as uow, refusals():
        waiver = uow.waivers.revoke(waiver_id, revoker, why, at or now(), caller=caller())
        uow.commit()
    return waiver


def list_waivers(service: str | None = None, at: datetime | None = None) -> list[dict[str, Any]]:
    with store.unit_of_work() as uow:
        return uow.waivers.list(service=service, at=at or now())


def list_defects(service: str) -> list[dict[str, Any]]:
    with store.unit_of_work() as uow:
        return uow.defects.for_service(service)


def plan_defect(fingerprint: str, service: str, owner: str, plan: str, at: datetime | None = None) -> dict[str, Any]:
    with store.unit_of_work() as uow, refusals():
        full = resolve_fingerprint(uow, service, fingerprint)
        defect = uow.defects.plan(service, full, plan, owner)
        uow.audit.append("defect.planned", f"{service}:{full}", {"owner": defect["owner"],
                         "remediation": defect["remediation"]}, at or now(), actor=local_user())
        uow.commit()
    return defect


def verify_audit() -> dict[str, Any]:
    with store.unit_of_work() as uow:
        return uow.audit.verify()


def describe_audit(result: dict[str, Any]) -> str:
    if result["ok"]:
        return f"audit chain intact: {result['checked']} events"
    return f"audit chain broken at event #{result['first_bad_id']}: {result['problem']}"
