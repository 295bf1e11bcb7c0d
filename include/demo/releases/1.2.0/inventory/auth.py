"""Bearer tokens for the write endpoints: a login (`POST /auth/token`) answers with a signed, expiring token.

A token is `<payload>.<signature>`: the payload is base64url JSON (`sub`, `role`, `exp`), the signature its
HMAC-SHA256 under $INVENTORY_TOKEN_SECRET. Accounts: `clerk` (role user, password $INVENTORY_CLERK_PASSWORD) and
`admin` (role admin, password $INVENTORY_ADMIN_PASSWORD). Without the secret, or an account's password, nobody
logs in and every write is refused.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import time

TOKEN_TTL_S = 3600
ACCOUNTS = {"clerk": ("user", "INVENTORY_CLERK_PASSWORD"), "admin": ("admin", "INVENTORY_ADMIN_PASSWORD")}


class Refused(Exception):
    """No valid token: 401."""


def _secret() -> bytes:
    return os.environ.get("INVENTORY_TOKEN_SECRET", "").encode()


def _sign(payload: str) -> str:
    return hmac.new(_secret(), payload.encode(), hashlib.sha256).hexdigest()


def issue(username: str, role: str, now: float | None = None, ttl_s: int = TOKEN_TTL_S) -> str:
    claims = {"sub": username, "role": role, "exp": int((now if now is not None else time.time()) + ttl_s)}
    payload = base64.urlsafe_b64encode(json.dumps(claims, sort_keys=True).encode()).decode().rstrip("=")
    return f"{payload}.{_sign(payload)}"


def login(payload: object) -> str | None:
    """A token for valid credentials ({"username", "password"}), else None."""
    if not isinstance(payload, dict) or not _secret():
        return None
    username, password = payload.get("username"), payload.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or username not in ACCOUNTS:
        return None
    role, env_name = ACCOUNTS[username]
    expected = os.environ.get(env_name, "")
    if not expected or not hmac.compare_digest(password.encode(), expected.encode()):
        return None
    return issue(username, role)


def verify(header: str | None) -> dict:
    """The claims of a valid, unexpired bearer token in an Authorization header; Refused otherwise."""
    if not _secret() or not header or not header.startswith("Bearer "):
        raise Refused("a bearer token is required")
    token = header[len("Bearer "):].strip()
    payload, _, signature = token.partition(".")
    if not payload or not hmac.compare_digest(signature.encode(), _sign(payload).encode()):
        raise Refused("invalid token")
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except ValueError as exc:
        raise Refused("invalid token") from exc
    if not isinstance(claims, dict) or not isinstance(claims.get("exp"), int) or claims["exp"] < time.time():
        raise Refused("token expired")
    return claims
