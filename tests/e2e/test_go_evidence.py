"""A GO run of the demo through the CLI: its readiness checklist ticks every item with the evidence behind it, its
verdict names the advisory data the dependency audit used, and with a signing key its evidence folder carries a
statement `releasegate attestation verify` accepts until one byte of evidence changes."""

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from tests.support.demo import BIN, DEMO_POLICY, run_cli

pytestmark = pytest.mark.slow


def signing_keys(folder: Path) -> tuple[Path, Path]:
    key = ed25519.Ed25519PrivateKey.generate()
    private, public = folder / "gate-signing.pem", folder / "gate-signing.pub.pem"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def verify_attestation(attestation: Path, public: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "releasegate"), "attestation", "verify", str(attestation), "--key", str(public)],
                          capture_output=True, text=True, timeout=60, check=False)


def test_a_go_runs_checklist_and_advisory_data(quick_policy, tmp_path):
    private, public = signing_keys(tmp_path)
    code, data = run_cli(quick_policy, "1.0.0", {"RELEASEGATE_SIGNING_KEY": str(private)})

    assert (code, data["decision"]) == (0, "GO"), data["reasons"]
    demo_data = DEMO_POLICY.parent / "advisories.osv.jsonl"
    used = data["advisory_data"]
    assert used["sha256"] == hashlib.sha256(demo_data.read_bytes()).hexdigest()
    assert (used["source"], used["advisories"], used["newest_modified"][:10]) == ("osv_data", 4, "2021-08-27")
    document = json.loads((Path(data["evidence_dir"]) / "evidence.json").read_text())
    assert document["verdict"]["advisory_data"] == used
    checklist = document["checklist"]
    suites = [c for c in checklist if c["item"].startswith("suite pytest[")]
    assert len(suites) == 3
    for item in checklist:
        assert item["checked"] is True, item
        assert "no evidence" not in item["evidence"], item
    for item in suites:
        assert " passed, 0 failed, 0 errors" in item["evidence"], item
    assert f"sha256 {used['sha256'][:12]}" in next(c["evidence"] for c in checklist
                                                    if c["item"] == "no blocking dependency advisory")
    assert "<exit code" not in json.dumps(document)
    migrations = next(s for s in document["stages"] if s["stage"] == "migrations")
    assert migrations["status"] == "passed", migrations["summary"]
    assert "migrations: 0 findings; 3 tables after up; up " in migrations["summary"] and "up again" in migrations["summary"]
    messaging = next(s for s in document["stages"] if s["stage"] == "messaging")
    assert messaging["status"] == "passed", messaging["summary"]
    assert "queues restock " in messaging["summary"] and "dead-letter restock.dead 0" in messaging["summary"]
    assert re.search(r"; jobs restock ([1-9][0-9]*)/\1 completed;", messaging["summary"]), messaging["summary"]
    folder = Path(data["evidence_dir"])
    assert {(folder / "dast" / "report.json").is_file(), (folder / "authz" / "matrix.json").is_file(),
            (folder / "credentials" / "detect-secrets.json").is_file()} == {True}
    stages = {s["stage"]: s for s in document["stages"]}
    assert [stages[s]["status"] for s in ("dast", "authz", "credentials")] == ["passed"] * 3
    assert "0 failing operation checks" in stages["dast"]["summary"], stages["dast"]["summary"]
    assert "0 answered otherwise" in stages["authz"]["summary"], stages["authz"]["summary"]
    assert "1 allowed as known fixtures" in stages["credentials"]["summary"], stages["credentials"]["summary"]

    folder = Path(data["evidence_dir"])
    attestation = folder / "attestation.intoto.json"
    verified = verify_attestation(attestation, public)
    assert verified.returncode == 0, verified.stderr
    assert "verified: GO for inventory 1.0.0" in verified.stdout
    junit = (folder / "gate-checks.junit.xml").read_text()
    assert 'failures="0" errors="0"' in junit
    evidence = bytearray((folder / "evidence.json").read_bytes())
    evidence[-2] ^= 0x20
    (folder / "evidence.json").write_bytes(bytes(evidence))
    tampered = verify_attestation(attestation, public)
    assert tampered.returncode == 1 and "evidence.json: changed" in tampered.stderr
