"""Response hygiene: what an answer of the service must not show (a stack trace, a framework's debug page, a
header naming a server's version) and the headers it must carry; and, for a service served over TLS, the protocol
it negotiates and whether its certificate verifies. Pure functions over an answer, and one TLS handshake.
"""

from __future__ import annotations

import re
import socket
import ssl
from collections.abc import Mapping
from urllib.parse import urlsplit

# What a stack trace or a debug page looks like in a body, per language and framework.
TRACE_MARKERS = (
    "Traceback (most recent call last)",        # Python
    "Werkzeug Debugger",                        # Flask's debug page
    "You're seeing this error because you have <code>DEBUG = True</code>",  # Django's
    "django.core.exceptions.",
    "Exception in thread \"",                  # Java
    "\tat java.",
    "at System.",                               # .NET
    "node:internal/",                           # Node.js
)
_VERSION = re.compile(r"\d+\.\d+")


def trace_marker(body: str) -> str | None:
    """The first stack-trace or debug-page marker in a body, else None."""
    return next((marker for marker in TRACE_MARKERS if marker in body), None)


def version_headers(headers: Mapping[str, str], forbidden: list[str]) -> list[str]:
    """`Name: value` of each forbidden header whose value names a version (Server: Werkzeug/3.1 Python/3.11)."""
    lowered = {k.lower(): (k, v) for k, v in headers.items()}
    return [f"{lowered[n.lower()][0]}: {lowered[n.lower()][1]}" for n in forbidden
            if n.lower() in lowered and _VERSION.search(lowered[n.lower()][1])]


def missing_headers(headers: Mapping[str, str], required: list[str]) -> list[str]:
    present = {k.lower() for k in headers}
    return [name for name in required if name.lower() not in present]


def tls_problems(base_url: str, timeout_s: float) -> list[str]:
    """For an https URL: the certificate that does not verify, or a protocol older than TLS 1.2; [] when sound or
    not TLS. A service that does not answer raises OSError."""
    parts = urlsplit(base_url)
    if parts.scheme != "https":
        return []
    host, port = parts.hostname or "", parts.port or 443
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, \
                ssl.create_default_context().wrap_socket(raw, server_hostname=host) as tls:
            version = tls.version() or ""
    except ssl.SSLCertVerificationError as exc:
        return [f"certificate does not verify: {exc.verify_message}"]
    except ssl.SSLError as exc:
        return [f"TLS handshake failed: {exc.reason or exc}"]
    return [] if version in ("TLSv1.2", "TLSv1.3") else [f"negotiated {version}, older than TLS 1.2"]
