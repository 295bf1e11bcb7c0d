"""Reading a policy file: bytes, text, YAML, validation; each problem a PolicyError that says the fix."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import ValidationError

from releasegate.domain.errors import PolicyError
from releasegate.policy.explain import _explain
from releasegate.policy.model import Policy
from releasegate.policy.parsing import _parse_yaml
from releasegate.policy.placeholders import (
    BROKER_PLACEHOLDERS,
    MIGRATION_PLACEHOLDERS,
    PLACEHOLDERS,
    _check_placeholders,
    _check_templates,
    dependency_placeholders,
)
from releasegate.policy.spec import MAX_POLICY_BYTES


def load_policy(path: str | Path) -> Policy:
    """Read and validate a policy file; every problem becomes one PolicyError that says how to fix it.

    Hostile files are refused with a message, never a traceback: more than MAX_POLICY_BYTES, not UTF-8,
    anchors and aliases, duplicate keys, nesting deeper than MAX_NESTING, tags beyond JSON's types,
    control characters, a bool where a number belongs, infinite or unbounded durations, and templates
    (report_url, commands) that would not render at run time.
    """
    file = Path(path)
    raw = _read_bytes(file)
    text = _decode(file, raw)
    data, lines = _parse_yaml(file, text)
    try:
        # JSON-mode strict validation: no bool for a number, no "8080" for an int; enums by their value
        policy = Policy.model_validate_json(json.dumps(data, allow_nan=True), strict=True)
    except ValidationError as exc:
        raise PolicyError(_explain(file, exc, lines)) from None
    _check_placeholders(file, data, known=PLACEHOLDERS + dependency_placeholders(policy) + MIGRATION_PLACEHOLDERS
                        + BROKER_PLACEHOLDERS)
    _check_templates(file, policy, lines)
    policy._path = file.resolve()
    policy._digest = "sha256:" + hashlib.sha256(raw).hexdigest()
    policy._lines = lines
    return policy


def _read_bytes(file: Path) -> bytes:
    if not file.is_file():
        raise PolicyError(f"{file}: policy file not found — pass the path of the service's gate.yaml")
    try:
        with file.open("rb") as handle:
            raw = handle.read(MAX_POLICY_BYTES + 1)
    except OSError as exc:
        raise PolicyError(f"{file}: cannot read the policy ({exc.strerror or exc}) — check its permissions") from None
    if len(raw) > MAX_POLICY_BYTES:
        raise PolicyError(f"{file}: the policy is larger than {MAX_POLICY_BYTES // 1024} KiB — a gate.yaml is a few "
                          "KiB; check that this is the right file")
    return raw


def _decode(file: Path, raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        raise PolicyError(f"{file}:{line}: not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}) — save the "
                          "policy as UTF-8") from None
