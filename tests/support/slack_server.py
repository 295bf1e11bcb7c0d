"""A Slack-Web-API-compatible server on loopback for tests: chat.postMessage, auth, scripted failures.

    with SlackServer(token="xoxb-test-1") as slack:
        slack.fail_next(429, times=1, retry_after=1)
        WebClient(token="xoxb-test-1", base_url=slack.url).chat_postMessage(channel="#r", text="hi")
        assert len(slack.requests) == 2
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl


@dataclass
class ReceivedRequest:
    method: str                       # Slack API method, e.g. chat.postMessage
    headers: dict[str, str]
    body: dict[str, Any]
    status: int                       # what the server answered
    ok: bool                          # whether the answer was {"ok": true}
    content_type: str = ""
    raw: bytes = field(default=b"", repr=False)


@dataclass
class _Failure:
    status: int
    times: int
    retry_after: int | None


class SlackServer:
    """Context manager: start on a free 127.0.0.1 port, stop on exit."""

    def __init__(self, token: str = "xoxb-test-token") -> None:
        self.token = token
        self.requests: list[ReceivedRequest] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/api/"

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        """Answer the next `times` calls with `status` (429 with Retry-After, or 500/503)."""
        with self._lock:
            self._failures.append(_Failure(status, times, retry_after))

    def messages(self) -> list[dict[str, Any]]:
        """Bodies of the chat.postMessage calls that were accepted."""
        return [r.body for r in self.requests if r.method == "chat.postMessage" and r.ok]

    def __enter__(self) -> Self:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="slack-server", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _take_failure(self) -> _Failure | None:
        with self._lock:
            if not self._failures:
                return None
            failure = self._failures[0]
            failure.times -= 1
            if failure.times <= 0:
                self._failures.pop(0)
            return failure

    def _record(self, request: ReceivedRequest) -> None:
        with self._lock:
            self.requests.append(request)


def parse_body(content_type: str, raw: bytes) -> dict[str, Any]:
    """JSON (chat.postMessage with blocks) or form-encoded (most other methods), as slack_sdk sends them."""
    if not raw:
        return {}
    if content_type.startswith("application/json"):
        return json.loads(raw.decode("utf-8"))
    return dict(parse_qsl(raw.decode("utf-8"), keep_blank_values=True))


def _handler_for(server: SlackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            method = self.path.split("?", 1)[0].removeprefix("/api/")
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            content_type = self.headers.get("Content-Type", "")
            status, headers, answer = self._answer(method, parse_body(content_type, raw))
            server._record(ReceivedRequest(method, dict(self.headers.items()), parse_body(content_type, raw),
                                           status, bool(answer.get("ok")), content_type, raw))
            self._send(status, headers, answer)

        def _answer(self, method: str, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any]]:
            failure = server._take_failure()
            if failure is not None:
                return _failure_answer(failure)
            if self.headers.get("Authorization", "") != f"Bearer {server.token}":
                return 200, {}, {"ok": False, "error": "invalid_auth"}
            if method != "chat.postMessage":
                return 200, {}, {"ok": False, "error": "unknown_method"}
            if not body.get("channel"):
                return 200, {}, {"ok": False, "error": "channel_not_found"}
            ts = f"{time.time():.6f}"
            return 200, {}, {"ok": True, "channel": "C123", "ts": ts,
                             "message": {"text": body.get("text", ""), "ts": ts}}

        def _send(self, status: int, headers: dict[str, str], answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


def _failure_answer(failure: _Failure) -> tuple[int, dict[str, str], dict[str, Any]]:
    if failure.status == 429:
        headers = {"Retry-After": str(failure.retry_after if failure.retry_after is not None else 1)}
        return 429, headers, {"ok": False, "error": "ratelimited"}
    headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
    return failure.status, headers, {"ok": False, "error": "internal_error"}
