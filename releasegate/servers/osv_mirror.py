"""An OSV-compatible HTTP server on loopback over a local advisory file, so pip-audit runs offline.

The file holds OSV records, one JSON object per line (optionally gzip-compressed); it is read in
place and indexed by PEP 503-normalised package name. Endpoints (as api.osv.dev):

    POST /v1/query       {"package": {"name", "ecosystem"}, "version"}  -> {"vulns": [record, ...]}
    POST /v1/querybatch  {"queries": [query, ...]}                      -> {"results": [{"vulns": [{"id", "modified"}]}]}
    GET  /v1/vulns/{id}                                                 -> record (404 if unknown)

pip-audit 2.10 (`-s osv --osv-url URL`) only POSTs single queries to URL (pip_audit/_service/osv.py);
`queries` counts the queries answered so a caller can check the tool really asked.

    with OsvMirror(path) as mirror:
        run pip-audit with --osv-url mirror.url      # http://127.0.0.1:PORT/v1/query

    python -m releasegate.servers.osv_mirror FILE --port N   # standalone
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import threading
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from packaging.version import InvalidVersion, Version

HOST = "127.0.0.1"
ECOSYSTEM = "PyPI"
_NAME = re.compile(r"[-_.]+")


def normalise_name(name: str) -> str:
    """PEP 503: lowercase, runs of -, _ and . become one -."""
    return _NAME.sub("-", name).lower()


def affects(affected: Mapping[str, Any], version: str) -> bool:
    """Whether one OSV `affected[]` entry covers `version`: listed explicitly or inside an ECOSYSTEM range."""
    if version in affected.get("versions", []):
        return True
    parsed = _parse(version)
    if parsed is None:
        return False
    return any(in_range(r.get("events", []), parsed) for r in affected.get("ranges", []) if r.get("type") == "ECOSYSTEM")


def in_range(events: Iterable[Mapping[str, str]], version: Version) -> bool:
    """OSV range semantics: sorted events; introduced opens, fixed (exclusive) / last_affected (inclusive) closes."""
    affected = False
    for kind, bound in sorted(_events(events), key=lambda e: (e[1], _ORDER[e[0]])):
        if kind == "introduced" and (bound is _ZERO or version >= bound):
            affected = True
        elif kind == "fixed" and version >= bound or kind == "last_affected" and version > bound:
            affected = False
    return affected


_ORDER = {"introduced": 0, "last_affected": 1, "fixed": 2, "limit": 3}
_ZERO = Version("0")  # introduced "0" means every version, pre-releases of 0.0 included


def _events(events: Iterable[Mapping[str, str]]) -> list[tuple[str, Version]]:
    out = []
    for event in events:
        for kind, raw in event.items():
            bound = _ZERO if (kind == "introduced" and raw == "0") else _parse(raw)
            if kind in ("introduced", "fixed", "last_affected") and bound is not None:
                out.append((kind, bound))
    return out


def _parse(version: str) -> Version | None:
    try:
        return Version(version)
    except InvalidVersion:
        return None


def matching(records: Iterable[Mapping[str, Any]], name: str, version: str) -> list[Mapping[str, Any]]:
    """The records whose affected entries for PyPI package `name` cover `version`."""
    wanted = normalise_name(name)
    return [r for r in records if any(_is_package(a, wanted) and affects(a, version) for a in r.get("affected", []))]


def _is_package(affected: Mapping[str, Any], wanted: str) -> bool:
    package = affected.get("package", {})
    return package.get("ecosystem") == ECOSYSTEM and normalise_name(package.get("name", "")) == wanted


class Advisories:
    """OSV records indexed by id and by normalised PyPI package name; `newest_modified` dates the data."""

    def __init__(self, records: Iterable[dict[str, Any]]):
        self.by_id: dict[str, dict[str, Any]] = {}
        self.by_package: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.newest_modified: datetime | None = None
        for record in records:
            self._add(record)

    def _add(self, record: dict[str, Any]) -> None:
        self.by_id[record["id"]] = record
        modified = parse_modified(record.get("modified"))
        if modified is not None and (self.newest_modified is None or modified > self.newest_modified):
            self.newest_modified = modified
        names = {normalise_name(a["package"]["name"]) for a in record.get("affected", [])
                 if a.get("package", {}).get("ecosystem") == ECOSYSTEM}
        for name in names:
            self.by_package[name].append(record)

    @classmethod
    def load(cls, path: str | Path) -> Advisories:
        return cls(read_records(Path(path)))

    def query(self, name: str, version: str) -> list[dict[str, Any]]:
        return matching(self.by_package.get(normalise_name(name), []), name, version)  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self.by_id)


def parse_modified(value: Any) -> datetime | None:
    """An OSV timestamp (RFC 3339, `2024-10-10T17:22:00Z`) as an aware datetime; None when absent or unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def read_records(path: Path) -> Iterable[dict[str, Any]]:
    """OSV records from JSON lines (.gz read as gzip); a bad line raises ValueError naming file and line."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if line.strip():
                yield _record(path, number, line)


def _record(path: Path, number: int, line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError as exc:
        raise ValueError(f"{path}:{number}: not a JSON object ({exc})") from None
    if not isinstance(record, dict) or "id" not in record:
        raise ValueError(f"{path}:{number}: not an OSV record (no 'id')")
    return record


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self._json_body()
        if body is None:
            return
        if self.path.rstrip("/") == "/v1/query":
            self._answer_query(body)
        elif self.path.rstrip("/") == "/v1/querybatch":
            self._answer_batch(body)
        else:
            self._send(404, {"code": 5, "message": f"no such endpoint: POST {self.path}"})

    def do_GET(self) -> None:
        prefix = "/v1/vulns/"
        record = self.server.advisories.by_id.get(self.path[len(prefix):]) if self.path.startswith(prefix) else None
        if record is None:
            self._send(404, {"code": 5, "message": "Bug not found."})
        else:
            self._send(200, record)

    def _answer_query(self, body: Mapping[str, Any]) -> None:
        query = _query(body)
        if query is None:
            self._send(400, {"code": 3, "message": "expected {package: {name, ecosystem}, version}"})
            return
        self._send(200, {"vulns": self.server.answer(*query)})

    def _answer_batch(self, body: Mapping[str, Any]) -> None:
        queries = [_query(q) for q in body.get("queries", [])] if isinstance(body.get("queries"), list) else [None]
        if any(q is None for q in queries):
            self._send(400, {"code": 3, "message": "expected {queries: [{package: {name, ecosystem}, version}]}"})
            return
        results = [{"vulns": [{"id": r["id"], "modified": r.get("modified", "")} for r in self.server.answer(*q)]}
                   for q in queries if q is not None]
        self._send(200, {"results": results})

    def _json_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self._send(400, {"code": 3, "message": "body is not JSON"})
            return None

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _query(body: Any) -> tuple[str, str, str] | None:
    package = body.get("package") if isinstance(body, dict) else None
    if not isinstance(package, dict) or not package.get("name") or not isinstance(body.get("version"), str):
        return None
    return package["name"], package.get("ecosystem", ECOSYSTEM), body["version"]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, advisories: Advisories, port: int):
        super().__init__((HOST, port), _Handler)
        self.advisories = advisories
        self.queries = 0
        self._lock = threading.Lock()

    def answer(self, name: str, ecosystem: str, version: str) -> list[dict[str, Any]]:
        with self._lock:
            self.queries += 1
        return self.advisories.query(name, version) if ecosystem == ECOSYSTEM else []


class OsvMirror:
    """Serve an advisory file on 127.0.0.1 (a free port unless given) in a daemon thread while in `with`."""

    def __init__(self, path: str | Path, port: int = 0):
        self.path = Path(path)
        self.port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        self._server = _Server(Advisories.load(self.path), self.port)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="osv-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def url(self) -> str:
        """The query endpoint, as pip-audit's --osv-url wants it."""
        return f"{self.base_url}/v1/query"

    @property
    def queries(self) -> int:
        return self._server.queries if self._server else 0

    @property
    def advisories(self) -> Advisories:
        assert self._server is not None, "mirror is not running"
        return self._server.advisories


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m releasegate.servers.osv_mirror",
                                     description="Serve OSV advisories from a local JSON-lines file on 127.0.0.1.")
    parser.add_argument("file", type=Path, help="OSV records, one JSON object per line (.gz allowed)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1 (0: any free port)")
    args = parser.parse_args(argv)
    mirror = OsvMirror(args.file, args.port)
    mirror.start()
    print(f"osv mirror: {len(mirror.advisories)} records from {args.file} at {mirror.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        mirror.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
