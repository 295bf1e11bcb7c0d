"""redact(): every kind of secret the gate may meet in tool output becomes [REDACTED]."""

import pytest

from releasegate.redact import MASK, redact

CASES = [
    # (id, text, expected)
    ("slack bot token", "posting with xoxb-123456-abcdef-XYZ failed",
     f"posting with {MASK} failed"),
    ("slack user token", "xoxp-1-2-3", MASK),
    ("bearer token", "Authorization: Bearer eyJhbGciOi.J9.abc-_=",
     f"Authorization: Bearer {MASK}"),
    ("aws access key", "key AKIAIOSFODNN7EXAMPLE in env", f"key {MASK} in env"),
    ("github token", "ghp_abcdefghijklmnopqrstuvwxyz0123456789 leaked", f"{MASK} leaked"),
    ("private key block", "a\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nabc\n-----END RSA PRIVATE KEY-----\nb",
     f"a\n{MASK}\nb"),
    ("truncated private key block", "x -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1r", f"x {MASK}"),
    ("password assignment", "password=hunter22 user=bob", f"password={MASK} user=bob"),
    ("passwd colon", "passwd: s3cr3t!", f"passwd: {MASK}"),
    ("secret assignment", "CLIENT_SECRET=abc123", f"CLIENT_SECRET={MASK}"),
    ("token assignment", "token=abcdef&next=1", f"token={MASK}&next=1"),
    ("api_key json", '{"api_key": "k-123456"}', f'{{"api_key": "{MASK}"}}'),
    ("quoted password with space", "password = 'my pass phrase'", f"password = '{MASK}'"),
    ("url credentials", "postgresql://gate:pa55word@db:5432/rg", f"postgresql://gate:{MASK}@db:5432/rg"),
    ("comparison is not an assignment", "if token == expected:", "if token == expected:"),
    ("plain url untouched", "see https://example.com/a:b for details", "see https://example.com/a:b for details"),
    ("nothing secret", "412 passed, 2 failed in 38.2 s", "412 passed, 2 failed in 38.2 s"),
    ("already redacted stays stable", f"token={MASK}", f"token={MASK}"),
    ("empty", "", ""),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_redacts(text, expected):
    assert redact(text) == expected


def test_redacts_values_of_secret_looking_env_vars(monkeypatch):
    monkeypatch.setenv("DEMO_DB_PASSWORD", "correct-horse-battery")
    monkeypatch.setenv("RELEASEGATE_API_KEY", "k9k9k9k9")

    text = redact("connect failed for correct-horse-battery; key k9k9k9k9 rejected")

    assert text == f"connect failed for {MASK}; key {MASK} rejected"


def test_env_values_are_read_at_call_time(monkeypatch):
    assert redact("value zebra-quartz-77") == "value zebra-quartz-77"
    monkeypatch.setenv("SOME_TOKEN", "zebra-quartz-77")

    assert redact("value zebra-quartz-77") == f"value {MASK}"


@pytest.mark.parametrize(("name", "value"), [("SHORT_SECRET", "abc12"), ("HOME_DIR", "/home/someone-long")])
def test_env_values_left_alone_when_short_or_name_not_secret(monkeypatch, name, value):
    monkeypatch.setenv(name, value)

    assert redact(f"see {value}") == f"see {value}"


def test_idempotent():
    text = "Bearer abcdef password=x1 postgres://u:p@h xoxb-1-2"

    assert redact(redact(text)) == redact(text)
