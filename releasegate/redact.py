"""Secret redaction: the one pass every text goes through before the gate stores, writes, logs or prints it.

`redact(text)` masks what it can recognise (credentials in URLs, private key blocks, well-known token
formats, `password=...` assignments) and every value it has been told is secret: the values of the
gate's own environment variables whose names look secret (read at call time), and the secrets of the
policies this process has loaded (`remember_policy`: values of `env` entries whose names look secret,
passwords in any URL the policy holds) or of the service's filled-in environment (`remember_env`).

Everything that enters the gate database, the audit trail, the evidence folder, a log or the CLI's
output passes through here first (`redact`, `redact_data`, `redact_file`, `RedactingFilter`), so a
secret is never stored and nothing ever needs scrubbing afterwards.

Every pattern runs in time linear in the text: quantifiers that could rescan are bounded, and URLs and
assignments are found from a cheap anchor (``:/``, ``=``, ``:``) outward instead of by a regex that
could try every start position against the rest of the text.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

MASK = "[REDACTED]"
MIN_SECRET_CHARS = 6  # shorter values are too likely to be ordinary text to mask wherever they appear
MIN_ENV_VALUE = MIN_SECRET_CHARS
CHUNK_BYTES = 1 << 20  # log files are redacted a chunk of whole lines at a time

_SECRET_NAME = re.compile(r"PASSWORD|PASSWD|PASSPHRASE|TOKEN|SECRET|KEY|CREDENTIAL", re.IGNORECASE)
_SECRET_ENV_NAME = _SECRET_NAME

_PRIVATE_KEY = re.compile(
    r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----|\Z)", re.DOTALL)
_KEY_BEGIN = re.compile(r"-----BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY-----")
_KEY_END = re.compile(r"-----END [A-Z0-9 ]{0,40}PRIVATE KEY-----")
# each with literals one of which a text must hold for the pattern to match: a cheap `in` test skips the regex
_TOKENS = (
    (("xox",), re.compile(r"\bxox[abprs]-[A-Za-z0-9-]+")),                           # Slack
    (("AKIA", "ASIA"), re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")),                # AWS access key id
    (("gh",), re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}\b")),                        # GitHub
    (("github_pat_",), re.compile(r"\bgithub_pat_[A-Za-z0-9_]{20,}\b")),             # GitHub fine-grained
)
_BEARER_WORD = re.compile(r"bearer", re.IGNORECASE)
_BEARER = re.compile(r"(?P<head>\bBearer\s+)(?!\[REDACTED\])[A-Za-z0-9\-._~+/]+=*", re.IGNORECASE)

# URLs: `scheme:/` with one slash or more (a URL that went through path normalisation keeps one), then
# `user:password@`. The password runs to the last `@` before the host (`p@ss@host`), never past a `/`.
_SCHEME_SLASHES = re.compile(r":/+")
_SCHEME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+.-")
_USERINFO = re.compile(r"[^\s:/@]*:(?P<password>[^\s/?#@]*(?:@[^\s/?#@]*)*)@")

# `key = value` and `"key": "value"` where the key names a secret.
_KEY = re.compile(r"(?<![\w.-])(?P<key>[\w.-]+)[\"']?\s*(?:=(?!=)|:(?!//))\s*")
_SECRET_KEY = re.compile(r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key",
                         re.IGNORECASE)
_SECRET_KEY_LOWER = re.compile(r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key")
_KEY_CHARS = re.compile(r"[\w.-]*")
_VALUE = re.compile(r"\"(?P<dq>[^\"\n]*)\"|'(?P<sq>[^'\n]*)'|(?P<bare>[^\s\"',;&}\])]+)")

_known: set[str] = set()
_known_lock = threading.Lock()
_known_cache: dict[str, tuple[int, list[str], list[str]]] = {}
# short texts (fingerprints, states, subjects) recur, and what the audit appends was redacted just before
SHORT_TEXT = 256
SHORT_CACHE_ENTRIES = 50_000
_SECRETS = object()  # the key under which the cache keeps the secrets its answers were computed with
_short_cache: dict[Any, Any] = {}
_short_lock = threading.Lock()
_PLAIN = (int, float, bool)
# os.environ's raw keys and values (bytes on POSIX): the secret-named keys, and the secret values they held
_env_cache: dict[str, tuple[tuple[Any, ...], tuple[Any, ...]]] = {}
_env_values_cache: dict[str, tuple[tuple[Any, ...], list[str]]] = {}


def redact(text: str) -> str:
    """The text with every secret it contains replaced by [REDACTED] (key names are kept)."""
    if not text:
        return text
    return _redact_with(text, known_secrets())


def _redact_with(text: str, secrets: list[str]) -> str:
    if len(text) > SHORT_TEXT:
        return _redact(text, secrets)
    if _short_cache.get(_SECRETS) is not secrets:  # what is secret changed: earlier answers may be wrong now
        with _short_lock:
            _short_cache.clear()
            _short_cache[_SECRETS] = secrets
    cleaned = _short_cache.get(text)
    if cleaned is None:
        cleaned = _redact(text, secrets)
        with _short_lock:
            if _short_cache.get(_SECRETS) is secrets:  # not an answer computed with secrets since replaced
                if len(_short_cache) > SHORT_CACHE_ENTRIES:
                    _short_cache.clear()
                    _short_cache[_SECRETS] = secrets
                _short_cache[text] = _short_cache[cleaned] = cleaned  # a redacted text redacts to itself
    return cleaned


def _redact(text: str, secrets: list[str]) -> str:
    for value in secrets:
        if value in text:
            text = text.replace(value, MASK)
    if "PRIVATE KEY-----" in text:
        text = _PRIVATE_KEY.sub(MASK, text)
    text = _redact_urls(text)
    for literals, pattern in _TOKENS:
        if any(literal in text for literal in literals):
            text = pattern.sub(MASK, text)
    if _BEARER_WORD.search(text):
        text = _BEARER.sub(lambda m: f"{m['head']}{MASK}", text)
    return _redact_assignments(text)


def redact_data(value: Any, keep: Iterable[str] = ()) -> Any:
    """A copy of a JSON-like value with every string redacted; mapping keys, and the values of keys in `keep`
    (identifiers such as a stage name or a fingerprint), are left as they are."""
    kept = frozenset(keep)
    secrets = known_secrets()  # once for the whole value

    def walk(item: Any) -> Any:
        kind = type(item)
        if kind is str:
            return _redact_with(item, secrets) if item else item
        if kind is dict:
            return {k: (v if k in kept else walk(v)) for k, v in item.items()}
        if item is None or kind in _PLAIN:
            return item
        if isinstance(item, str):
            return _redact_with(item, secrets) if item else item
        if isinstance(item, Mapping):
            return {k: (v if k in kept else walk(v)) for k, v in item.items()}
        if isinstance(item, (list, tuple)):
            return [walk(v) for v in item]
        return item

    return walk(value)


def redact_file(source: Path, target: Path) -> None:
    """Write `source`, redacted, to `target` (atomically); whole lines at a time, a private key block whole."""
    from releasegate.atomic import atomic_writer

    with open(source, encoding="utf-8", errors="replace", newline="") as raw, atomic_writer(target) as out:
        chunk: list[str] = []
        size = 0
        for line in raw:
            chunk.append(line)
            size += len(line)
            if size >= CHUNK_BYTES and not _open_key_block(chunk):
                out.write(redact("".join(chunk)).encode("utf-8"))
                chunk, size = [], 0
        if chunk:
            out.write(redact("".join(chunk)).encode("utf-8"))


def _open_key_block(lines: list[str]) -> bool:
    text = "".join(lines[-200:])  # a key block is a few dozen lines
    begins = [m.end() for m in _KEY_BEGIN.finditer(text)]
    return bool(begins) and not _KEY_END.search(text, begins[-1])


@functools.lru_cache(maxsize=4096)
def looks_secret(name: str) -> bool:
    """Whether an environment variable's name says its value is a secret (TOKEN, SECRET, PASSWORD, KEY...)."""
    return bool(_SECRET_NAME.search(name))


def secret_env_values() -> list[str]:
    """Values of the gate's environment variables whose names look secret, longest first (read at call time: a
    variable set or changed since the last call counts at once; what is read is cached until then)."""
    data = getattr(os.environ, "_data", None)  # the raw mapping: its keys and values compare without decoding
    if not isinstance(data, dict):
        return _secret_env_scan()
    names = tuple(data)
    cached = _env_cache.get("names")
    if cached is None or cached[0] != names:
        secret = tuple(raw for raw in names if looks_secret(os.environ.decodekey(raw)))
        _env_cache["names"] = cached = (names, secret)
    raw_values = tuple(data[raw] for raw in cached[1])
    found = _env_values_cache.get("values")
    if found is None or found[0] != raw_values:
        _env_values_cache["values"] = found = (raw_values, _secret_env_scan())
    return found[1]


def _secret_env_scan() -> list[str]:
    values = {value for name, value in os.environ.items() if looks_secret(name) and len(value) >= MIN_SECRET_CHARS}
    return sorted(values, key=len, reverse=True)


def remember(values: Iterable[str]) -> None:
    """Mask these values from now on in this process (too-short values are ignored)."""
    usable = {v for v in values if isinstance(v, str) and len(v.strip()) >= MIN_SECRET_CHARS and v not in MASK}
    if usable:
        with _known_lock:
            _known.update(usable)


def remember_env(env: Mapping[str, str]) -> None:
    """The secret-looking entries of an environment the gate passes to a process (policy values filled in)."""
    remember(value for name, value in env.items() if looks_secret(name))
    remember(url_passwords(env.values()))


def remember_policy(policy: Any) -> None:
    """Every secret a policy declares (see `policy_secrets`)."""
    remember(policy_secrets(policy))


def policy_secrets(policy: Any) -> set[str]:
    """What a policy declares secret: values of `env` entries (the service's, each suite's, each dependency's)
    whose names look secret, and the password of every URL anywhere in the policy. A value with {placeholders}
    contributes its literal parts too, since the filled-in value differs."""
    data = policy.model_dump(mode="json") if hasattr(policy, "model_dump") else dict(policy)
    found: set[str] = set()
    for env in _env_maps(data):
        for name, value in env.items():
            if isinstance(value, str) and looks_secret(name):
                found.update(_literal_parts(value))
    found.update(part for password in url_passwords(_strings(data)) for part in _literal_parts(password))
    return {v for v in found if len(v) >= MIN_SECRET_CHARS}


def url_passwords(texts: Iterable[str]) -> set[str]:
    """The password of every `scheme://user:password@host` in the texts, as written and percent-decoded."""
    found: set[str] = set()
    for text in texts:
        for anchor in _SCHEME_SLASHES.finditer(text):
            match = _credentials_at(text, anchor)
            if match is not None and match["password"]:
                found.update({match["password"], unquote(match["password"])})
    return found


def known_secrets() -> list[str]:
    env = secret_env_values()
    with _known_lock:
        cached = _known_cache.get("sorted")
        if cached is not None and cached[0] == len(_known) and cached[1] is env:
            return cached[2]
        ordered = sorted(set(_known) | set(env), key=len, reverse=True)
        _known_cache["sorted"] = (len(_known), env, ordered)  # _known only grows, except by forget()
        return ordered


def forget() -> None:
    """Forget the remembered values (the environment's are read at each call anyway)."""
    with _known_lock:
        _known.clear()
        _known_cache.clear()


def _env_maps(data: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    environment = data.get("environment") or {}
    maps = [environment.get("env") or {}]
    maps += [d.get("env") or {} for d in environment.get("dependencies") or []]
    maps += [s.get("env") or {} for s in data.get("suites") or []]
    return maps


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


_PLACEHOLDER = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


def _literal_parts(value: str) -> set[str]:
    return {value} | {p for p in _PLACEHOLDER.split(value) if p.strip()}


def _credentials_at(text: str, anchor: re.Match[str]) -> re.Match[str] | None:
    """`user:password@` right after a `scheme:/` anchor (a scheme of letters, digits, + . - before the colon)."""
    if anchor.start() == 0 or text[anchor.start() - 1] not in _SCHEME_CHARS:
        return None
    return _USERINFO.match(text, anchor.end())


def _redact_urls(text: str) -> str:
    if ":/" not in text:
        return text
    out: list[str] = []
    done = 0
    for anchor in _SCHEME_SLASHES.finditer(text):
        if anchor.start() < done:
            continue
        match = _credentials_at(text, anchor)
        if match is None or not match["password"] or match["password"] == MASK:
            continue
        out.append(text[done:match.start("password")])
        out.append(MASK)
        done = match.end("password")
    out.append(text[done:])
    return "".join(out)


def _redact_assignments(text: str) -> str:
    """`key = value` where the key names a secret, found from the secret words outward: a text dense with
    ordinary `name="value"` pairs (XML, JSON) costs one regex scan, and each key word is read once."""
    if "=" not in text and ":" not in text:
        return text
    out: list[str] = []
    done = scanned = 0
    lowered = text.lower()  # a case-sensitive scan skips ahead far faster than an IGNORECASE one
    hits = _SECRET_KEY_LOWER.finditer(lowered) if len(lowered) == len(text) else _SECRET_KEY.finditer(text)
    for hit in hits:
        if hit.start() < scanned:
            continue  # inside a key word already looked at
        start = _word_start(text, hit.start(), scanned)
        key_chars = _KEY_CHARS.match(text, hit.end())  # `*`: matches always, maybe empty
        scanned = key_chars.end() if key_chars is not None else hit.end()
        key = _KEY.match(text, start) if start >= done else None
        if key is None or text.startswith(MASK, key.end()):
            continue
        value = _VALUE.match(text, key.end())
        if value is None:
            continue
        out.append(text[done:key.end()])
        out.append(f'"{MASK}"' if value["dq"] is not None else f"'{MASK}'" if value["sq"] is not None else MASK)
        done = scanned = max(scanned, value.end())
    out.append(text[done:])
    return "".join(out)


def _word_start(text: str, at: int, floor: int) -> int:
    """Where the key word (letters, digits, `_`, `.`, `-`) holding position `at` begins, not before `floor`."""
    while at > floor and (text[at - 1].isalnum() or text[at - 1] in "_.-"):
        at -= 1
    return at


class RedactingFilter(logging.Filter):
    """Redacts a log record's message (and its traceback) before any handler writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the logging module's to report
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def protect(target: logging.Logger | logging.Handler) -> None:
    """Attach the redacting filter to a logger (records logged on it) or a handler (everything it writes)."""
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
