"""The one redaction pass: URLs after path normalisation, the policy's declared secrets, whole structures, log
files and log records, in time linear in the text."""

from __future__ import annotations

import logging
import time

import pytest

from releasegate import redact as redaction
from releasegate.redact import MASK, redact, redact_data, redact_file

SECRET = "canary-7Hq2pLx9"


@pytest.fixture(autouse=True)
def _forget():
    redaction.forget()
    yield
    redaction.forget()


@pytest.mark.parametrize(("text", "expected"), [
    ("GET https:/user:pw-123456@host/x failed", f"GET https:/user:{MASK}@host/x failed"),
    ("/srv/data/https:/svc:p4ss@mirror:8080/v1", f"/srv/data/https:/svc:{MASK}@mirror:8080/v1"),
    ("redis://:hunter22@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
    ("postgresql://u:p@ss@db/x", f"postgresql://u:{MASK}@db/x"),
    ("mailto://a@b and http://host:8080/path", "mailto://a@b and http://host:8080/path"),
    (f"https://u:{MASK}@h", f"https://u:{MASK}@h"),
])
def test_url_credentials_with_any_number_of_slashes(text, expected):
    assert redact(text) == expected


ADVERSARIAL = {
    "dotted words": "a." * 100_000,
    "secret words glued": "token." * 30_000,
    "secret words unseparated": "password" * 30_000,
    "scheme anchors": "a:/" * 60_000,
    "userinfo without @": "x:/u:" * 40_000,
    "assignments": "password=" * 30_000,
    "open quotes": 'password="' * 30_000,
    "colons": "a:" * 100_000,
    "long token": "ghp_" + "A" * 200_000 + "_",
    "key headers": "-----BEGIN RSA " * 20_000,
    "dotted token, 100k characters": "token=" + ".".join(["eyJhbGciOiJIUzI1NiJ9"] * 4_800),
    "base64url token, 100k characters": "api_key: " + ("aB3-_x" * 16_700),
    "bearer token, 100k characters": "Authorization: Bearer " + ("Zm9v" * 25_000),
    "URL password, 100k characters": "postgresql://user:" + ("p4ss" * 25_000) + "@db/x",
}


@pytest.mark.parametrize("text", [t for name, t in ADVERSARIAL.items() if "100k" in name],
                         ids=[name for name in ADVERSARIAL if "100k" in name])
def test_a_100k_character_token_is_masked_whole(text):
    cleaned = redact(text)

    assert MASK in cleaned and len(cleaned) < 100
    assert redact(cleaned) == cleaned


@pytest.mark.parametrize("text", ADVERSARIAL.values(), ids=ADVERSARIAL.keys())
def test_linear_time_on_adversarial_input(text):
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 2.0  # each is ~200 kB; the old patterns took 46 s on 4 kB


def test_policy_secrets_are_env_values_with_secret_names_and_url_passwords():
    policy = {
        "environment": {"env": {"API_TOKEN": SECRET, "DATABASE_URL": "sqlite:///{workdir}/x.db",
                                "DB_PASSWORD": "pw-{version}-Qm4z8r"},
                        "dependencies": [{"env": {"WAREHOUSE_SECRET": "dep-secret-77"}}]},
        "suites": [{"env": {"CLIENT_CREDENTIAL": "suite-cred-55"}}],
        "scans": {"pip_audit": {"osv_url": "https://gate:osv-pass-99@osv.internal/v1/query"}},
    }

    found = redaction.policy_secrets(policy)

    assert {SECRET, "dep-secret-77", "suite-cred-55", "osv-pass-99", "pw-{version}-Qm4z8r", "-Qm4z8r"} <= found
    assert "sqlite:///{workdir}/x.db" not in found


def test_remembered_policy_secrets_are_masked_wherever_they_appear():
    redaction.remember_policy({"environment": {"env": {"API_TOKEN": SECRET}}})

    assert redact(f"startup: the credential is {SECRET}.") == f"startup: the credential is {MASK}."
    assert redact(f"nonnumeric port: '{SECRET}@127.0.0.1:1'") == f"nonnumeric port: '{MASK}@127.0.0.1:1'"


def test_filled_in_environment_is_remembered_too():
    redaction.remember_env({"DB_PASSWORD": "pw-1.0.0-Qm4z8r", "PORT": "808080"})

    assert redact("pw-1.0.0-Qm4z8r and 808080") == f"{MASK} and 808080"


def test_short_values_are_not_remembered():
    redaction.remember(["abc12", ""])

    assert redact("abc12") == "abc12"


def test_redact_data_keeps_keys_and_identifiers():
    redaction.remember([SECRET])
    data = {"stage": f"pytest[{SECRET}]", "error": f"failed with {SECRET}", SECRET: 1,
            "findings": [{"title": f"x {SECRET}", "n": 3}]}

    cleaned = redact_data(data, keep={"stage"})

    assert cleaned == {"stage": f"pytest[{SECRET}]", "error": f"failed with {MASK}", SECRET: 1,
                       "findings": [{"title": f"x {MASK}", "n": 3}]}


def test_redact_file_in_chunks_keeps_a_key_block_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(redaction, "CHUNK_BYTES", 64)
    redaction.remember([SECRET])
    key = "-----BEGIN RSA PRIVATE KEY-----\n" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldY\n" * 10 + "-----END RSA PRIVATE KEY-----\n"
    source = tmp_path / "raw.log"
    source.write_text("line one\n" * 20 + key + f"started with {SECRET}\n" * 20)

    redact_file(source, tmp_path / "clean.log")

    clean = (tmp_path / "clean.log").read_text()
    assert SECRET not in clean and "QUJDREVG" not in clean
    assert clean.count(MASK) == 21 and clean.startswith("line one\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clean.log", "raw.log"]  # no temporary file left


def test_log_records_are_redacted_before_any_handler(caplog):
    redaction.remember([SECRET])
    logger = logging.getLogger("releasegate.test_redact_pass")
    redaction.protect(logger)
    try:
        raise RuntimeError(f"connect failed with {SECRET}")
    except RuntimeError:
        with caplog.at_level(logging.INFO, logger=logger.name):
            logger.exception("stage %s: %s", "x", f"token {SECRET}")

    assert SECRET not in caplog.text and MASK in caplog.text
