"""Secret redaction for any text that came from a tool, a log or the environment.

Every excerpt, error message and summary passes through `redact()` before the gate renders,
writes or sends it, so a token printed by a test or a crash never reaches a report or Slack.
"""

from __future__ import annotations

import os
import re

MASK = "[REDACTED]"
MIN_ENV_VALUE = 6

_SECRET_ENV_NAME = re.compile(r"PASSWORD|PASSWD|TOKEN|SECRET|KEY", re.IGNORECASE)

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)", re.DOTALL)
_URL_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/@]+:)[^\s@/]+(?P<at>@)")
_TOKENS = (
    re.compile(r"\bxox[abprs]-[A-Za-z0-9-]+"),                        # Slack
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),                     # AWS access key id
    re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b"),                    # GitHub
    re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b"),                  # GitHub fine-grained
)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)
_ASSIGNMENT = re.compile(
    r"""(?P<head>\b[\w.-]*?(?:password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[\w.-]*
          ["']?\s*(?:=(?!=)|:(?!//))\s*)
        (?!\[REDACTED\])
        (?:"(?P<dq>[^"\n]*)"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s"',;&}\]\)]+))""",
    re.IGNORECASE | re.VERBOSE,
)


def redact(text: str) -> str:
    """The text with every secret it contains replaced by [REDACTED] (key names are kept)."""
    if not text:
        return text
    text = _redact_env_values(text)
    text = _PRIVATE_KEY.sub(MASK, text)
    text = _URL_CREDENTIALS.sub(lambda m: f"{m['head']}{MASK}{m['at']}", text)
    for pattern in _TOKENS:
        text = pattern.sub(MASK, text)
    text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    return _ASSIGNMENT.sub(_mask_assignment, text)


def secret_env_values() -> list[str]:
    """Values of environment variables whose names look secret, longest first (read at call time)."""
    values = {value for name, value in os.environ.items()
              if _SECRET_ENV_NAME.search(name) and len(value) >= MIN_ENV_VALUE}
    return sorted(values, key=len, reverse=True)


def _redact_env_values(text: str) -> str:
    for value in secret_env_values():
        if value in text:
            text = text.replace(value, MASK)
    return text


def _mask_assignment(match: re.Match[str]) -> str:
    if match["dq"] is not None:
        return f'{match["head"]}"{MASK}"'
    if match["sq"] is not None:
        return f"{match['head']}'{MASK}'"
    return f"{match['head']}{MASK}"
