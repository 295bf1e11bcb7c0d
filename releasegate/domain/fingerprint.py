"""Stable fingerprints: a delimiter-safe hash of the fields that identify the same problem across runs.

Line numbers are never part of a fingerprint; locations are normalised paths or node ids.
"""

import hashlib
import re

_WS = re.compile(r"\s+")


def fingerprint(*parts: str) -> str:
    """sha256 over length-prefixed parts, so ("ab", "c") and ("a", "bc") differ."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8")
        digest.update(f"{len(data)}:".encode())
        digest.update(data)
    return digest.hexdigest()[:32]


def normalise_code(code: str) -> str:
    """Collapse whitespace so reformatting a matched line keeps its fingerprint."""
    return _WS.sub(" ", code).strip()


def normalise_path(path: str) -> str:
    """Forward slashes, no leading ./, so the same file has one spelling everywhere."""
    path = path.replace("\\", "/")
    while path.startswith("./"):
        path = path[2:]
    return path
