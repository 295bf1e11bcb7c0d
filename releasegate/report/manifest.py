"""MANIFEST.sha256: every file of the evidence folder and its sha256, written last (a half-written folder never
verifies)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from releasegate.atomic import is_temporary, write_atomic
from releasegate.domain.models import sha256_file

MANIFEST = "MANIFEST.sha256"
ATTESTATION = "attestation.intoto.json"  # signs the manifest, so it is written after it and never listed in it
UNLISTED = frozenset({MANIFEST, ATTESTATION})


def write_manifest(folder: Path) -> str:
    """Write MANIFEST.sha256 (sha256sum format, sorted) for every file but itself, atomically; return its sha256.

    Write it last: a folder whose writing stopped half way has no manifest (or a stale one), so it never verifies.
    """
    text = manifest_text(folder)
    write_atomic(folder / MANIFEST, text)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def manifest_text(folder: Path, pending: dict[str, bytes] | None = None) -> str:
    """The manifest of `folder` as it will be once `pending` (contents by relative path) is written too."""
    pending = pending or {}
    digests = {p.relative_to(folder).as_posix(): sha256_file(p) for p in _evidence_files(folder)}
    digests.update({name: hashlib.sha256(data).hexdigest() for name, data in pending.items() if name not in UNLISTED})
    return "".join(f"{digest}  {name}\n" for name, digest in sorted(digests.items()))


def _evidence_files(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and not is_temporary(p)
             and p.relative_to(folder).as_posix() not in UNLISTED]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())
