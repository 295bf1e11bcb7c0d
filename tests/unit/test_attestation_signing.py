"""The verdict's signed statement: an in-toto statement over the evidence folder in a DSSE envelope, and
`releasegate attestation verify`, which fails when the signature or any evidence file it covers is not intact."""

import base64
import json
import logging
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from releasegate.cli.entry import main
from releasegate.exports.attestation import ATTESTATION, Attested, attest, verify
from releasegate.exports.signing import SIGNING_KEY_ENV, SigningError
from releasegate.report import MANIFEST, write_manifest
from tests.support.builders import T0

ABOUT = Attested("shop", "1.4.2", "rg-run-1", "GO", "sha256:" + "a" * 64, T0)


def write_keys(folder: Path, private) -> tuple[Path, Path]:
    private_pem = folder / "signing.pem"
    public_pem = folder / "signing.pub.pem"
    private_pem.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    public_pem.write_bytes(private.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
    return private_pem, public_pem


@pytest.fixture
def evidence(tmp_path: Path) -> Path:
    folder = tmp_path / "evidence"
    (folder / "stages").mkdir(parents=True)
    (folder / "verdict.json").write_text('{"decision": "GO"}\n')
    (folder / "report.html").write_text("<html>GO</html>\n")
    (folder / "stages" / "semgrep.json").write_text('{"findings": []}\n')
    write_manifest(folder)
    return folder


@pytest.fixture(params=["ed25519", "ecdsa-p256"])
def keys(request, tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    private = ed25519.Ed25519PrivateKey.generate() if request.param == "ed25519" else ec.generate_private_key(
        ec.SECP256R1())
    private_pem, public_pem = write_keys(tmp_path, private)
    monkeypatch.setenv(SIGNING_KEY_ENV, str(private_pem))
    return private_pem, public_pem


def test_the_statement_covers_every_evidence_file_and_summarises_the_verdict(evidence, keys):
    path = attest(evidence, ABOUT)
    envelope = json.loads(path.read_text())
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    statement = json.loads(base64.b64decode(envelope["payload"]))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert {s["name"] for s in statement["subject"]} == {"verdict.json", "report.html", "stages/semgrep.json",
                                                        MANIFEST}
    predicate = statement["predicate"]
    assert statement["predicateType"] == "https://slsa.dev/verification_summary/v1"
    assert predicate["policy"]["digest"] == {"sha256": "a" * 64}
    assert predicate["verificationResult"] == "PASSED"
    manifest_sha = next(s["digest"]["sha256"] for s in statement["subject"] if s["name"] == MANIFEST)
    assert predicate["inputAttestations"] == [{"uri": MANIFEST, "digest": {"sha256": manifest_sha}}]
    assert predicate["releasegate"]["decision"] == "GO"
    assert ATTESTATION not in (evidence / MANIFEST).read_text()


def test_an_intact_folder_verifies_with_the_public_key(evidence, keys, capsys):
    attest(evidence, ABOUT)
    assert verify(evidence / ATTESTATION, keys[1])[0] == []
    assert main(["attestation", "verify", str(evidence / ATTESTATION), "--key", str(keys[1])]) == 0
    assert "verified: GO for shop 1.4.2" in capsys.readouterr().out


def test_one_changed_byte_of_evidence_fails_naming_the_file(evidence, keys, capsys):
    attest(evidence, ABOUT)
    data = bytearray((evidence / "stages" / "semgrep.json").read_bytes())
    data[2] ^= 0x01
    (evidence / "stages" / "semgrep.json").write_bytes(bytes(data))

    assert main(["attestation", "verify", str(evidence / ATTESTATION), "--key", str(keys[1])]) == 1
    err = capsys.readouterr().err
    assert "stages/semgrep.json: changed" in err and "report.html" not in err


def test_a_removed_evidence_file_fails(evidence, keys):
    attest(evidence, ABOUT)
    (evidence / "report.html").unlink()
    problems, _ = verify(evidence / ATTESTATION, keys[1])
    assert problems == [f"report.html: missing from {evidence}"]


def test_a_file_added_after_signing_fails_naming_it(evidence, keys):
    attest(evidence, ABOUT)
    (evidence / "stages" / "chaos.json").write_text('{"stage": "chaos", "status": "passed"}')

    problems, _ = verify(evidence / ATTESTATION, keys[1])

    assert problems == ["stages/chaos.json: not covered by the attestation (added after it was signed)"]


def test_a_malformed_signature_beside_a_good_one_does_not_stop_the_good_one(evidence, keys):
    attest(evidence, ABOUT)
    envelope = json.loads((evidence / ATTESTATION).read_text())
    envelope["signatures"] = [{"sig": "not*base64"}, "not a signature", *envelope["signatures"]]
    (evidence / ATTESTATION).write_text(json.dumps(envelope))

    assert verify(evidence / ATTESTATION, keys[1])[0] == []


def test_a_changed_statement_no_longer_verifies(evidence, keys):
    attest(evidence, ABOUT)
    envelope = json.loads((evidence / ATTESTATION).read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    statement["predicate"]["verificationResult"] = "FAILED"
    envelope["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    (evidence / ATTESTATION).write_text(json.dumps(envelope))
    problems, _ = verify(evidence / ATTESTATION, keys[1])
    assert len(problems) == 1 and "signature does not verify" in problems[0]


def test_the_wrong_key_fails(evidence, keys, tmp_path, capsys):
    attest(evidence, ABOUT)
    other = tmp_path / "other"
    other.mkdir()
    _, wrong_public = write_keys(other, ed25519.Ed25519PrivateKey.generate())
    assert main(["attestation", "verify", str(evidence / ATTESTATION), "--key", str(wrong_public)]) == 1
    assert "signature does not verify" in capsys.readouterr().err


def test_a_missing_public_key_file_is_a_clear_error(evidence, keys, tmp_path, capsys):
    attest(evidence, ABOUT)
    missing = tmp_path / "nowhere.pem"
    assert main(["attestation", "verify", str(evidence / ATTESTATION), "--key", str(missing)]) == 2
    assert f"key file {missing} not found" in capsys.readouterr().err


def test_a_missing_signing_key_file_is_a_clear_error(evidence, tmp_path, monkeypatch):
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "gone.pem"))
    with pytest.raises(SigningError, match=r"gone\.pem not found"):
        attest(evidence, ABOUT)
    assert not (evidence / ATTESTATION).exists()


def test_an_unsupported_key_is_refused_with_what_to_use(evidence, tmp_path, monkeypatch):
    private_pem, _ = write_keys(tmp_path, ec.generate_private_key(ec.SECP384R1()))
    monkeypatch.setenv(SIGNING_KEY_ENV, str(private_pem))
    with pytest.raises(SigningError, match="Ed25519 or ECDSA P-256"):
        attest(evidence, ABOUT)


def test_without_a_key_no_attestation_is_written_and_the_log_says_so(evidence, keys, monkeypatch, caplog):
    attest(evidence, ABOUT)  # signed once; then the key goes away: the stale statement must go too
    monkeypatch.delenv(SIGNING_KEY_ENV)
    with caplog.at_level(logging.INFO, logger="releasegate"):
        assert attest(evidence, ABOUT) is None
    assert not (evidence / ATTESTATION).exists()
    assert f"neither {SIGNING_KEY_ENV} nor the Airflow connection releasegate_signing_key is set" in caplog.text


def test_an_airflow_connection_can_hold_the_key(evidence, tmp_path, monkeypatch):
    """No RELEASEGATE_SIGNING_KEY: the PEM in the password of the connection releasegate_signing_key signs."""
    private = ed25519.Ed25519PrivateKey.generate()
    _, public_pem = write_keys(tmp_path, private)
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_RELEASEGATE_SIGNING_KEY", json.dumps({"conn_type": "generic", "password": pem}))
    assert attest(evidence, ABOUT) == evidence / ATTESTATION
    assert verify(evidence / ATTESTATION, public_pem)[0] == []


def test_a_connection_without_a_key_is_a_clear_error(evidence, monkeypatch):
    monkeypatch.delenv(SIGNING_KEY_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_CONN_RELEASEGATE_SIGNING_KEY", json.dumps({"conn_type": "generic"}))
    with pytest.raises(SigningError, match="releasegate_signing_key has no password"):
        attest(evidence, ABOUT)


def test_the_gate_logs_an_unusable_key_and_keeps_going_without_a_statement(tmp_path, monkeypatch, caplog):
    from releasegate.pipeline.conclusion import attest_evidence
    from tests.support.builders import run_context

    ctx = run_context(tmp_path)
    ctx.evidence.mkdir(parents=True)
    (ctx.evidence / "verdict.json").write_text("{}\n")
    write_manifest(ctx.evidence)
    (ctx.evidence / ATTESTATION).write_text("{}")  # a statement from an earlier conclusion
    monkeypatch.setenv(SIGNING_KEY_ENV, str(tmp_path / "missing.pem"))
    with caplog.at_level(logging.ERROR, logger="releasegate"):
        attest_evidence(ctx, "GO", "sha256:" + "a" * 64, T0)
    assert not (ctx.evidence / ATTESTATION).exists()
    # the variable's value counts as a secret (its name ends in KEY) and is redacted: the message names the variable
    assert f"attestation: not written: SigningError: {SIGNING_KEY_ENV}: key file" in caplog.text
    assert "not found" in caplog.text
