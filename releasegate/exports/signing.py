"""Keys for the verdict's attestation: a PEM private key signs (Ed25519, or ECDSA on P-256 with SHA-256), its
public key verifies, and DSSE's pre-authentication encoding is what both see. Every problem with a key file is a
SigningError naming the file and what to do."""

from __future__ import annotations

import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from releasegate.domain.errors import ReleaseGateError

SIGNING_KEY_ENV = "RELEASEGATE_SIGNING_KEY"
SIGNING_KEY_CONNECTION = "releasegate_signing_key"  # an Airflow connection whose password is the PEM private key
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey


class SigningError(ReleaseGateError):
    """A key file that is missing, unreadable or of a kind the gate does not sign with."""


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1's pre-authentication encoding: what is signed, so the type cannot be swapped under a signature."""
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(payload), payload)


def load_private_key(path: Path) -> PrivateKey:
    return private_key_from_pem(_read(path, "private"), f"signing key {path}")


def private_key_from_pem(data: bytes, origin: str) -> PrivateKey:
    """The key in `data` (PEM); `origin` names where it came from in errors (never the key itself)."""
    if b"-----BEGIN" not in data:
        raise SigningError(f"{origin} is not PEM — give an unencrypted PEM private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"{origin} could not be read ({exc}) — give an unencrypted PEM private key") from None
    if isinstance(key, ed25519.Ed25519PrivateKey) or _p256(key):
        return key  # type: ignore[return-value]
    raise SigningError(f"{origin}: {type(key).__name__} is not supported — use an Ed25519 or ECDSA P-256 key "
                       f"(e.g. `openssl genpkey -algorithm ed25519 -out gate-signing.pem`)")


def load_public_key(path: Path) -> PublicKey:
    data = _read(path, "public")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningError(f"public key {path} could not be read ({exc}) — give a PEM public key") from None
    if isinstance(key, ed25519.Ed25519PublicKey) or _p256(key):
        return key  # type: ignore[return-value]
    raise SigningError(f"public key {path}: {type(key).__name__} is not supported — give the Ed25519 or ECDSA "
                       f"P-256 public key of the signing key (`openssl pkey -in KEY -pubout`)")


def sign(key: PrivateKey, message: bytes) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(message)
    return key.sign(message, ec.ECDSA(hashes.SHA256()))


def verifies(key: PublicKey, signature: bytes, message: bytes) -> bool:
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        else:
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def key_id(key: PublicKey) -> str:
    """The sha256 of the public key's DER SubjectPublicKeyInfo: names the key without giving anything away."""
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def _read(path: Path, kind: str) -> bytes:
    if not path.is_file():
        raise SigningError(f"key file {path} not found (or not a file) — give the path of a PEM {kind} key")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise SigningError(f"key file {path}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise SigningError(f"key file {path} is not a PEM file — give a PEM {kind} key")
    return data


def _p256(key: object) -> bool:
    return isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
