"""The fault proxy on loopback: forwards bytes, adds latency, resets open and new connections, clears."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest

from releasegate.servers.faultproxy import Proxy, control_handler

LOOPBACK = "127.0.0.1"


def _echo_server() -> socket.socket:
    server = socket.create_server((LOOPBACK, 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=_echo, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return server


def _echo(conn: socket.socket) -> None:
    with conn:
        try:
            while data := conn.recv(4096):
                conn.sendall(data)
        except OSError:
            pass


@pytest.fixture
def proxy() -> Iterator[tuple[Proxy, str]]:
    upstream = _echo_server()
    proxy = Proxy((LOOPBACK, 0), upstream.getsockname())
    control = ThreadingHTTPServer((LOOPBACK, 0), control_handler(proxy))
    threading.Thread(target=proxy.serve, daemon=True).start()
    threading.Thread(target=control.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield proxy, f"http://{LOOPBACK}:{control.server_address[1]}"
    finally:
        control.shutdown()
        control.server_close()
        proxy.close()
        proxy.reset_active()
        upstream.shutdown(socket.SHUT_RDWR)
        upstream.close()


def test_a_closed_proxy_stops_accepting_and_takes_nothing_from_the_next_server():
    upstream = _echo_server()
    proxy = Proxy((LOOPBACK, 0), upstream.getsockname())
    accepting = threading.Thread(target=proxy.serve, daemon=True)
    accepting.start()
    time.sleep(0.1)  # blocked in accept

    proxy.close()
    accepting.join(timeout=2)
    after = socket.create_server((LOOPBACK, 0))  # may reuse the closed socket's number
    try:
        client = socket.create_connection(after.getsockname(), timeout=2)
        after.settimeout(2)
        accepted, _ = after.accept()  # not taken by the closed proxy's thread
        accepted.close()
        client.close()
    finally:
        after.close()
        upstream.shutdown(socket.SHUT_RDWR)
        upstream.close()
    assert not accepting.is_alive(), "the closed proxy's accept thread is still running"


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as answer:
        return json.load(answer)


def _round_trip(proxy: Proxy, payload: bytes = b"ping") -> tuple[bytes, float]:
    started = time.perf_counter()
    with socket.create_connection(proxy.server.getsockname(), timeout=5) as sock:
        sock.sendall(payload)
        data = sock.recv(4096)
    return data, time.perf_counter() - started


def test_forwards_bytes_both_ways(proxy):
    data, _seconds = _round_trip(proxy[0])
    assert data == b"ping"


def test_latency_is_added_to_each_direction_and_cleared(proxy):
    proxy_, control = proxy
    _post(f"{control}/faults", {"latency_ms": 250})
    data, slow = _round_trip(proxy_)
    _post(f"{control}/clear", {})
    _data, fast = _round_trip(proxy_)

    assert data == b"ping"
    assert slow >= 0.5  # 250 ms on the request chunk and 250 ms on the answer chunk
    assert slow - fast >= 0.45  # cleared: the added half second is gone, however busy the machine is


def test_reset_active_closes_open_connections_with_a_reset(proxy):
    proxy_, control = proxy
    sock = socket.create_connection(proxy_.server.getsockname(), timeout=5)
    sock.sendall(b"hello")
    assert sock.recv(4096) == b"hello"

    state = _post(f"{control}/faults", {"reset_active": True})

    with sock, pytest.raises(ConnectionResetError):
        sock.recv(4096)  # a TCP reset, not an orderly close (which would read b"")
    assert state["reset_now"] >= 1


def test_refuse_new_resets_each_new_connection_until_cleared(proxy):
    proxy_, control = proxy
    _post(f"{control}/faults", {"refuse_new": True})

    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        _round_trip(proxy_)
    state = _post(f"{control}/clear", {})

    assert state["refused"] == 1 and not state["refuse_new"]
    assert _round_trip(proxy_)[0] == b"ping"


def test_control_reports_state_and_rejects_unknown_paths(proxy):
    _proxy, control = proxy
    with urllib.request.urlopen(f"{control}/faults", timeout=5) as answer:
        state = json.load(answer)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(f"{control}/nope", timeout=5)

    assert state["latency_ms"] == 0 and state["refuse_new"] is False
    assert missing.value.code == 404
