"""The verdict as a signed statement: an in-toto Statement v1 whose subjects are every evidence file the manifest
lists (and the manifest itself) and whose predicate is a SLSA verification summary (the policy's digest, the
evidence manifest's digest, the decision), in a DSSE envelope signed with the key `RELEASEGATE_SIGNING_KEY` names,
written last into the evidence folder as `attestation.intoto.json`. `verify` checks the signature and then every
file it covers."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from releasegate.atomic import write_atomic
from releasegate.domain.models import sha256_file
from releasegate.exports.signing import (
    SIGNING_KEY_CONNECTION,
    SIGNING_KEY_ENV,
    PrivateKey,
    SigningError,
    key_id,
    load_private_key,
    load_public_key,
    pae,
    private_key_from_pem,
    sign,
    verifies,
)
from releasegate.report.manifest import ATTESTATION, MANIFEST

log = logging.getLogger("releasegate")

PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
VSA_TYPE = "https://slsa.dev/verification_summary/v1"
VERIFIER_ID = "urn:releasegate:release_gate"

__all__ = ["ATTESTATION", "Attested", "SigningError", "attest", "statement", "verify"]


@dataclass(frozen=True)
class Attested:
    """What the statement says about the run."""

    service: str
    version: str
    run_id: str
    decision: str
    policy_digest: str     # "sha256:<hex>", as the policy's digest is written
    decided_at: datetime


def attest(folder: Path, about: Attested) -> Path | None:
    """Sign the folder's manifest and verdict into `attestation.intoto.json`; None (and no file) without a key.

    Raises SigningError for a key that is set but cannot be used."""
    target = folder / ATTESTATION
    key = signing_key()
    if key is None:
        target.unlink(missing_ok=True)  # a stale statement must not outlive the files it signed
        log.info("attestation: neither %s nor the Airflow connection %s is set, so no %s is written (name a PEM "
                 "Ed25519 or ECDSA P-256 private key there to sign the verdict)", SIGNING_KEY_ENV,
                 SIGNING_KEY_CONNECTION, ATTESTATION)
        return None
    if not (folder / MANIFEST).is_file():
        target.unlink(missing_ok=True)
        log.warning("attestation: %s has no %s (its writing did not finish): nothing is signed", folder, MANIFEST)
        return None
    payload = json.dumps(statement(folder, about), sort_keys=True, separators=(",", ":")).encode("utf-8")
    envelope = {"payloadType": PAYLOAD_TYPE, "payload": base64.b64encode(payload).decode("ascii"),
                "signatures": [{"keyid": key_id(key.public_key()),
                                "sig": base64.b64encode(sign(key, pae(PAYLOAD_TYPE, payload))).decode("ascii")}]}
    write_atomic(target, json.dumps(envelope, indent=2) + "\n")
    log.info("attestation: %s %s@%s signed with key %s over %s", about.decision, about.service, about.version,
             key_id(key.public_key())[:12], target)
    return target


def signing_key() -> PrivateKey | None:
    """The key `RELEASEGATE_SIGNING_KEY` names (a PEM file), else the PEM in the password of the Airflow connection
    `releasegate_signing_key`, else None. A key that is named but unusable raises SigningError."""
    from releasegate.airflow_glue import signing_key_connection

    key_path = os.environ.get(SIGNING_KEY_ENV, "").strip()
    if key_path:
        try:
            return load_private_key(Path(key_path))
        except SigningError as exc:  # the path is redacted in logs (a *_KEY variable's value): name the variable
            raise SigningError(f"{SIGNING_KEY_ENV}: {exc}") from None
    connection = signing_key_connection()
    if connection is None:
        return None
    if not connection.password:
        raise SigningError(f"the Airflow connection {SIGNING_KEY_CONNECTION} has no password — put the PEM private "
                           f"key there")
    return private_key_from_pem(connection.password.encode("utf-8"), f"the Airflow connection {SIGNING_KEY_CONNECTION}")


def statement(folder: Path, about: Attested) -> dict:
    """The in-toto statement over the folder as its manifest lists it (the manifest read once, hashed as read)."""
    manifest = (folder / MANIFEST).read_bytes()
    manifest_sha = hashlib.sha256(manifest).hexdigest()
    subjects = [{"name": name, "digest": {"sha256": digest}} for name, digest in _listed(manifest)]
    subjects.append({"name": MANIFEST, "digest": {"sha256": manifest_sha}})
    policy_algorithm, _, policy_hex = about.policy_digest.partition(":")
    verified = about.decided_at.replace(tzinfo=UTC) if about.decided_at.tzinfo is None else about.decided_at
    predicate = {
        "verifier": {"id": VERIFIER_ID, "version": {"releasegate": _version()}},
        "timeVerified": verified.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "resourceUri": f"pkg:generic/{about.service}@{about.version}",
        "policy": {"uri": "policy.yaml", "digest": {policy_algorithm or "sha256": policy_hex}},
        "inputAttestations": [{"uri": MANIFEST, "digest": {"sha256": manifest_sha}}],
        "verificationResult": "PASSED" if about.decision == "GO" else "FAILED",
        "verifiedLevels": [f"RELEASEGATE_{about.decision}"],
        "slsaVersion": "1.0",
        "releasegate": {"decision": about.decision, "run_id": about.run_id, "service": about.service,
                        "version": about.version, "evidence_manifest_sha256": manifest_sha,
                        "policy_digest": about.policy_digest},
    }
    return {"_type": STATEMENT_TYPE, "subject": subjects, "predicateType": VSA_TYPE, "predicate": predicate}


def verify(path: Path, public_key: Path) -> tuple[list[str], dict]:
    """Problems found (none: the signature and every file it covers are intact) and the statement's predicate.

    Raises SigningError for a key or an attestation file that cannot be read at all."""
    key = load_public_key(public_key)
    envelope = _envelope(path)
    payload = base64.b64decode(envelope["payload"], validate=True)
    signed = any(_signature_verifies(key, s, pae(envelope["payloadType"], payload)) for s in envelope["signatures"])
    if not signed:
        return [f"{path.name}: the signature does not verify with {public_key} (another key signed it, or the "
                f"statement was changed)"], {}
    data = json.loads(payload)
    if data.get("_type") != STATEMENT_TYPE or data.get("predicateType") != VSA_TYPE:
        return [f"{path.name}: not an in-toto statement of a verification summary"], {}
    covered = {str(s.get("name", "")) for s in data["subject"]}
    added = [f"{name}: not covered by the attestation (added after it was signed)"
             for name in _files_under(path.parent) if name not in covered and name != path.name]
    return [p for s in data["subject"] if (p := _changed(path.parent, s))] + added, data["predicate"]


def _signature_verifies(key, signature: object, message: bytes) -> bool:
    """One signature of the envelope; one that is malformed verifies nothing (another may still verify)."""
    if not isinstance(signature, dict) or not isinstance(signature.get("sig"), str):
        return False
    try:
        raw = base64.b64decode(signature["sig"], validate=True)
    except ValueError:
        return False
    return bool(verifies(key, raw, message))


def _files_under(folder: Path) -> list[str]:
    """Every file in the evidence folder, as a subject names it (POSIX path relative to the folder)."""
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() or p.is_symlink())


def _envelope(path: Path) -> dict:
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SigningError(f"attestation {path} not found") from None
    except (OSError, ValueError) as exc:
        raise SigningError(f"attestation {path} cannot be read: {exc}") from None
    if (not isinstance(envelope, dict) or envelope.get("payloadType") != PAYLOAD_TYPE
            or not isinstance(envelope.get("signatures"), list) or not isinstance(envelope.get("payload"), str)):
        raise SigningError(f"attestation {path} is not a DSSE envelope of an in-toto statement")
    return envelope


def _changed(folder: Path, subject: dict) -> str:
    """'' when the file the subject names is there with its digest; else what is wrong with it."""
    name = str(subject.get("name", ""))
    expected = subject.get("digest", {}).get("sha256", "")
    parts = PurePosixPath(name).parts
    if not name or PurePosixPath(name).is_absolute() or ".." in parts:
        return f"{name!r}: a subject outside the evidence folder"
    file = folder.joinpath(*parts)
    if not file.is_file():
        return f"{name}: missing from {folder}"
    actual = sha256_file(file)
    return "" if actual == expected else f"{name}: changed (sha256 {actual[:16]}…, signed {expected[:16]}…)"


def _listed(manifest: bytes) -> list[tuple[str, str]]:
    rows = [line.split("  ", 1) for line in manifest.decode("utf-8").splitlines() if line.strip()]
    return [(name, digest) for digest, name in rows]


def _version() -> str:
    from releasegate import __version__

    return __version__
