"""Callers of the running service (policy `dast.callers`, `authz.callers`): each one's bearer token, and one HTTP
request as a caller sends it.

A token comes from the policy (`token`), the gate's environment (`token_env`), a setup request (`setup`, a login
whose JSON answer holds the token) or another caller's token altered (`forge`). A setup request that fails is a
StageError: the stage cannot say who may do what without the tokens it needs. Every token is remembered by
releasegate.redact, so no log, evidence file or reason carries one.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from releasegate.domain.errors import StageError
from releasegate.policy.security import Caller, SetupRequest
from releasegate.redact import redact, remember

FORGED_TAIL = 4  # characters of a token's end (its signature, for a signed token) the forged caller alters
BODY_CHARS = 64 * 1024


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: str


def send(method: str, url: str, token: str | None, json_body: Any = None, timeout_s: float = 10) -> Answer:
    """One request; any HTTP status is an Answer, a connection that fails raises OSError."""
    data = None if json_body is None else json.dumps(json_body).encode()
    headers = {"Accept": "application/json"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310 - the service
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as answer:  # noqa: S310 - the service under test
            return Answer(answer.status, dict(answer.headers.items()), _text(answer.read(BODY_CHARS)))
    except urllib.error.HTTPError as exc:
        return Answer(exc.code, dict(exc.headers.items()), _text(exc.read(BODY_CHARS)))


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="replace")


def tokens(callers: dict[str, Caller], base_url: str, timeout_s: float) -> dict[str, str | None]:
    """Each caller's token (None: anonymous); StageError naming the caller whose token could not be had."""
    found: dict[str, str | None] = {}
    for name, caller in callers.items():
        if caller.forge is None:
            found[name] = _token(name, caller, base_url, timeout_s)
    for name, caller in callers.items():
        if caller.forge is not None:
            original = found.get(caller.forge)
            if not original:
                raise StageError(f"callers.{name}.forge: caller {caller.forge!r} has no token to forge from — "
                                 "give it a token, token_env or setup")
            found[name] = forged(original)
    remember(t for t in found.values() if t)
    return found


def forged(token: str) -> str:
    """The token with its last characters changed: same shape, a signature that cannot verify."""
    head, tail = token[:-FORGED_TAIL], token[-FORGED_TAIL:]
    return head + "".join("A" if ch != "A" else "B" for ch in tail)


def _token(name: str, caller: Caller, base_url: str, timeout_s: float) -> str | None:
    if caller.token is not None:
        return caller.token
    if caller.token_env is not None:
        value = os.environ.get(caller.token_env)
        if not value:
            raise StageError(f"caller {name!r} takes its token from ${caller.token_env}, which is not set in the "
                             "gate's environment — export it before the run")
        return value
    if caller.setup is not None:
        return setup_token(name, caller.setup, base_url, timeout_s)
    return None


def setup_token(name: str, setup: SetupRequest, base_url: str, timeout_s: float) -> str:
    """The token a setup request (a login) answers with; StageError saying how it failed."""
    remember(str(v) for v in setup.json_body.values())
    what = f"callers.{name}.setup: {setup.method} {setup.path}"
    try:
        answer = send(setup.method, base_url.rstrip("/") + setup.path, None, setup.json_body or None, timeout_s)
    except OSError as exc:
        raise StageError(f"{what} could not reach the service: {exc} — is it running at {base_url}?") from exc
    if not 200 <= answer.status < 300:
        raise StageError(f"{what} answered HTTP {answer.status}: {redact(answer.body.strip()[:200])} — check the "
                         "test account's credentials in the policy")
    token = _field(answer.body, setup.token_field)
    if not token:
        raise StageError(f"{what} answered HTTP {answer.status} without a token in the JSON field "
                         f"{setup.token_field!r} — set token_field to where the service puts it")
    return token


def _field(body: str, dotted: str) -> str | None:
    try:
        value: Any = json.loads(body)
    except ValueError:
        return None
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value if isinstance(value, str) and value else None
