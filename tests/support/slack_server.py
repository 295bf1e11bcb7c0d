"""A Slack-Web-API-compatible server on loopback for tests: chat.postMessage (threads: ``thread_ts``),
chat.update, auth, scripted failures. It keeps the messages it holds as Slack would: a channel name resolves to a
channel id (the first is C123), each message has a ts, a reply must name a message of that channel as its
``thread_ts`` and an update must name channel id and ts of an existing message.

    with SlackServer(token="xoxb-test-1") as slack:
        slack.fail_next(429, times=1, retry_after=1)
        WebClient(token="xoxb-test-1", base_url=slack.url).chat_postMessage(channel="#r", text="hi")
        assert len(slack.requests) == 2
"""

from __future__ import annotations

import json
import re
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
        self.channels: dict[str, str] = {}                       # channel name -> channel id
        self.held: dict[tuple[str, str], dict[str, Any]] = {}    # (channel id, ts) -> the message as it is now
        self._failures: list[_Failure] = []
        self._ts = 0
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
        """Bodies of the chat.postMessage calls that were accepted (replies in threads too)."""
        return [r.body for r in self.requests if r.method == "chat.postMessage" and r.ok]

    def top_level(self) -> list[dict[str, Any]]:
        """The messages in channels as they are now (updates applied), oldest first; replies left out."""
        return [m for m in self.held.values() if not m.get("thread_ts")]

    def replies(self, ts: str) -> list[dict[str, Any]]:
        """The replies in the thread of the message ``ts``, oldest first."""
        return [m for m in self.held.values() if m.get("thread_ts") == ts]

    def updates(self) -> list[dict[str, Any]]:
        """Bodies of the chat.update calls that were accepted."""
        return [r.body for r in self.requests if r.method == "chat.update" and r.ok]

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

    def _channel_id(self, channel: str) -> str | None:
        """A known channel id as is; a name gets the next id (C123, C124, ...); "#nowhere*" does not exist."""
        if channel in self.channels.values():
            return channel
        if not channel or channel.startswith("#nowhere") or re.fullmatch(r"C[0-9A-Z]+", channel):
            return None  # an id Slack does not know, or a channel that does not exist
        return self.channels.setdefault(channel, f"C{123 + len(self.channels)}")

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            channel = self._channel_id(str(body.get("channel") or ""))
            if channel is None:
                return {"ok": False, "error": "channel_not_found"}
            thread_ts = body.get("thread_ts")
            if thread_ts and (channel, thread_ts) not in self.held:
                return {"ok": False, "error": "thread_not_found"}
            self._ts += 1
            ts = f"{time.time():.0f}.{self._ts:06d}"
            message = {"channel": channel, "ts": ts, "text": body.get("text", ""), "blocks": body.get("blocks"),
                       **({"thread_ts": thread_ts} if thread_ts else {})}
            self.held[(channel, ts)] = message
            return {"ok": True, "channel": channel, "ts": ts, "message": {"text": message["text"], "ts": ts}}

    def _update(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            channel, ts = str(body.get("channel") or ""), str(body.get("ts") or "")
            if channel not in self.channels.values():
                return {"ok": False, "error": "channel_not_found"}   # chat.update takes a channel id only
            message = self.held.get((channel, ts))
            if message is None:
                return {"ok": False, "error": "message_not_found"}
            message.update(text=body.get("text", ""), blocks=body.get("blocks"), edited=True)
            return {"ok": True, "channel": channel, "ts": ts, "text": message["text"]}


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
            if method == "chat.postMessage":
                return 200, {}, server._post(body)
            if method == "chat.update":
                return 200, {}, server._update(body)
            return 200, {}, {"ok": False, "error": "unknown_method"}

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
