"""A fault-injecting TCP proxy for a service's dependency, driven over a loopback HTTP control API.

    python -m releasegate.servers.faultproxy --listen 127.0.0.1:P --upstream 127.0.0.1:Q --control 127.0.0.1:C

Control API (JSON, loopback only):
    GET  /healthz   -> {"status": "ok"}
    GET  /faults    -> current faults and counters
    POST /faults    {"latency_ms": 800, "refuse_new": true, "reset_active": true}: latency is added before every
                    chunk forwarded in either direction; refuse_new resets each new connection at once;
                    reset_active closes the open ones with a TCP reset
    POST /clear     -> no faults
The gate starts it (one per dependency with `proxy: true`) and stops it by its pid at teardown.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import struct
import sys
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNK = 65536


@dataclass
class Faults:
    latency_ms: float = 0.0
    refuse_new: bool = False


class Proxy:
    """Accepts on `listen`, forwards to `upstream`, applies the current faults."""

    def __init__(self, listen: tuple[str, int], upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.faults = Faults()
        self.lock = threading.Lock()
        self.active: set[socket.socket] = set()
        self.resetting: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self.counters = {"connections": 0, "refused": 0, "reset": 0}
        self.server = socket.create_server(listen, reuse_port=False)

    def close(self) -> None:
        """Stop accepting: shutting the listening socket down wakes the thread blocked in ``serve``'s accept (a
        plain close does not on Linux, and the thread would accept again on whatever socket reuses the number)."""
        with contextlib.suppress(OSError):
            self.server.shutdown(socket.SHUT_RDWR)
        self.server.close()

    def serve(self) -> None:
        while True:
            try:
                client, _addr = self.server.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(client,), daemon=True).start()

    def _handle(self, client: socket.socket) -> None:
        with self.lock:
            self.counters["connections"] += 1
            refuse = self.faults.refuse_new
        if refuse:
            self._count("refused")
            _reset(client)
            return
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        self._track(client, upstream)
        threading.Thread(target=self._pump, args=(upstream, client), daemon=True).start()
        self._pump(client, upstream)

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(CHUNK):
                self._delay()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            self._close_pair(src, dst)

    def _delay(self) -> None:
        latency = self.faults.latency_ms
        if latency > 0:
            time.sleep(latency / 1000)

    def _track(self, *socks: socket.socket) -> None:
        with self.lock:
            self.active.update(socks)

    def _close_pair(self, *socks: socket.socket) -> None:
        with self.lock:  # both pump threads of a pair get here: one decision per socket
            for sock in socks:
                self.active.discard(sock)
                if sock.fileno() == -1:
                    continue
                if sock not in self.resetting:  # a reset one has SO_LINGER 0: close() sends the reset
                    _shutdown(sock)
                sock.close()

    def _count(self, name: str, n: int = 1) -> None:
        with self.lock:
            self.counters[name] += n

    def reset_active(self) -> int:
        """Reset every open connection: the pump threads wake up (SHUT_RD) and close with SO_LINGER 0."""
        with self.lock:
            victims = list(self.active)
            self.resetting.update(victims)
        # Linger 0 on every socket first: waking one pump thread closes its partner socket at once, which
        # must already send a reset, not an orderly close.
        for sock in victims:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        for sock in victims:
            try:
                sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        self._count("reset", len(victims) // 2)
        return len(victims) // 2

    def set_faults(self, latency_ms: float | None = None, refuse_new: bool | None = None) -> None:
        with self.lock:
            if latency_ms is not None:
                self.faults.latency_ms = max(0.0, float(latency_ms))
            if refuse_new is not None:
                self.faults.refuse_new = bool(refuse_new)

    def state(self) -> dict:
        with self.lock:
            return {**asdict(self.faults), **self.counters, "active": len(self.active) // 2}


def _shutdown(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _reset(sock: socket.socket) -> None:
    """Close with SO_LINGER 0: the peer sees a TCP reset, not an orderly close."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def apply(proxy: Proxy, body: dict) -> dict:
    """One POST /faults request: set latency and refusal, then reset the open connections if asked."""
    proxy.set_faults(body.get("latency_ms"), body.get("refuse_new"))
    reset = proxy.reset_active() if body.get("reset_active") else 0
    return {**proxy.state(), "reset_now": reset}


def control_handler(proxy: Proxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/healthz":
                self._answer(200, {"status": "ok"})
            elif self.path == "/faults":
                self._answer(200, proxy.state())
            else:
                self._answer(404, {"error": f"no {self.path}: use /faults, /clear or /healthz"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path == "/clear":
                proxy.set_faults(0, False)
                self._answer(200, proxy.state())
            elif self.path == "/faults":
                self._answer(200, apply(proxy, self._body()))
            else:
                self._answer(404, {"error": f"no {self.path}: use POST /faults or POST /clear"})

        def _body(self) -> dict:
            length = int(self.headers.get("Content-Length") or 0)
            data = json.loads(self.rfile.read(length) or b"{}") if length else {}
            return data if isinstance(data, dict) else {}

        def _answer(self, status: int, payload: dict) -> None:
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args) -> None:
            sys.stderr.write("faultproxy control: " + (fmt % args) + "\n")

    return Handler


def address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise argparse.ArgumentTypeError(f"{text}: only loopback addresses are allowed")
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m releasegate.servers.faultproxy", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True)
    parser.add_argument("--upstream", type=address, required=True)
    parser.add_argument("--control", type=address, required=True)
    args = parser.parse_args(argv)
    proxy = Proxy(args.listen, args.upstream)
    control = ThreadingHTTPServer(args.control, control_handler(proxy))
    control.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    threading.Thread(target=proxy.serve, daemon=True).start()
    print(f"faultproxy: {args.listen} -> {args.upstream}, control on {args.control}", flush=True)
    try:
        control.serve_forever(poll_interval=0.2)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        proxy.close()
        control.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
