"""The dast and authz stages against small real services this test starts on loopback: a FastAPI app whose OpenAPI
document FastAPI writes (Schemathesis finds its server error and the write that ignores the token), and a Flask app
without any OpenAPI document (the authorization matrix needs none). A fake Schemathesis, a schema nobody serves
and a login that fails are errors (INCONCLUSIVE), never a pass."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

import pytest

from releasegate.context import RunContext
from releasegate.domain.models import Status
from releasegate.environment import Environment, free_port
from releasegate.policy import Policy
from releasegate.stages import registry
from tests.support.fake_tools import fake_tool

FASTAPI_APP = '''
from fastapi import FastAPI, Header, HTTPException
from pydantic import BaseModel, Field

app = FastAPI()
TOKEN = "Bearer s3cret-user-token-991"


class Stock(BaseModel):
    quantity: int = Field(ge=0, le=100)


@app.post("/login")
def login(body: dict):
    if body.get("password") != "pw-for-tests-1":
        raise HTTPException(401, "bad credentials")
    return {"token": TOKEN.split()[1]}


@app.put("/items/{item_id}/stock", openapi_extra={"security": [{"bearer": []}]})
def set_stock(item_id: int, stock: Stock, authorization: str | None = Header(None, include_in_schema=False)):
    # the defect: the token is never checked
    if stock.quantity > 50:
        raise RuntimeError("stock above the shelf size")  # the defect: a 500 for half the valid range
    return {"item_id": item_id, "quantity": stock.quantity}


@app.delete("/items/{item_id}", openapi_extra={"security": [{"bearer": []}]})
def delete_item(item_id: int, authorization: str | None = Header(None, include_in_schema=False)):
    if authorization != TOKEN:
        raise HTTPException(401, "token required")
    return {"deleted": item_id}


_openapi = app.openapi


def openapi():
    doc = _openapi()
    doc.setdefault("components", {})["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    return doc


app.openapi = openapi
'''

FLASK_APP = '''
from flask import Flask, jsonify, request

app = Flask(__name__)
TOKENS = {"user-token-5521": "user", "admin-token-7730": "admin"}


@app.post("/session")
def session():
    body = request.get_json(silent=True) or {}
    if body.get("password") != "pw-for-tests-2":
        return jsonify(error="bad credentials"), 401
    return jsonify(data={"token": "user-token-5521"})


def role():
    header = request.headers.get("Authorization", "")
    return TOKENS.get(header.removeprefix("Bearer "))


@app.post("/orders")
def orders():  # protected
    if role() is None:
        return jsonify(error="token required"), 401
    return jsonify(ok=True), 201


@app.delete("/orders/1")
def delete_order():  # the defect: any valid token may delete, not only an admin
    if role() is None:
        return jsonify(error="token required"), 401
    return "", 204


@app.get("/public")
def public():
    return jsonify(ok=True)
'''


def start(folder: Path, module: str, source: str, command: list[str]):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{module}.py").write_text(source)
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", *command, "--port", str(port)], cwd=folder,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(base_url + "/", timeout=1)  # noqa: S310 - loopback
        except urllib.error.HTTPError:
            break  # it answers (404 at /)
        except OSError:
            time.sleep(0.2)
            continue
        break
    return proc, base_url, port


@pytest.fixture(scope="module")
def fastapi_service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fastapi-svc")
    proc, base_url, port = start(folder, "api", FASTAPI_APP, ["uvicorn", "api:app", "--host", "127.0.0.1"])
    yield base_url, port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def flask_service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("flask-svc")
    proc, base_url, port = start(folder, "app", FLASK_APP, ["flask", "--app", "app", "run", "--host", "127.0.0.1"])
    yield base_url, port
    proc.terminate()
    proc.wait(timeout=10)


def run_stage(tmp_path: Path, port: int, section: str, spec: dict):
    policy = Policy.model_validate({"service": "svc", section: spec})
    ctx = RunContext(run_id="r1", service="svc", version="1", policy_path=str(tmp_path / "gate.yaml"),
                     evidence_dir=str(tmp_path / "evidence"), workspace=str(tmp_path), started=datetime.now(UTC))
    env = Environment(host="127.0.0.1", port=port, base_url=f"http://127.0.0.1:{port}", pid=0, pid_created=0,
                      log_path="", env={})
    planned = registry.find(policy, section)
    return planned.stage.run(policy, ctx, env, planned)


DAST = {"openapi": "{base_url}/openapi.json", "max_examples": 10, "seed": 7,
        "callers": {"user": {"setup": {"path": "/login", "json": {"password": "pw-for-tests-1"}}}}, "auth": "user"}


def test_dast_finds_the_server_error_and_the_ignored_token_of_a_fastapi_service(fastapi_service, tmp_path):
    _, port = fastapi_service
    result = run_stage(tmp_path, port, "dast", DAST)

    assert result.status is Status.failed, result.error
    found = {(f.location, f.rule): f for f in result.findings}
    assert {("PUT /items/{item_id}/stock", "not_a_server_error"), ("PUT /items/{item_id}/stock", "ignored_auth")} <= \
        set(found)
    assert ("DELETE /items/{item_id}", "ignored_auth") not in found  # that one checks the token
    ignored = found[("PUT /items/{item_id}/stock", "ignored_auth")]
    assert ignored.severity.value == "critical" and ignored.blocking
    assert ignored.evidence.startswith("curl -X PUT") and "/items/" in ignored.evidence
    evidence = "".join(p.read_text(errors="replace") for p in (tmp_path / "evidence" / "dast").rglob("*")
                       if p.is_file())
    assert "s3cret-user-token-991" not in evidence and "pw-for-tests-1" not in evidence


def test_dast_fingerprints_are_the_operation_and_check_not_the_example(fastapi_service, tmp_path):
    _, port = fastapi_service
    first = run_stage(tmp_path / "a", port, "dast", {**DAST, "seed": 1, "severity": {"not_a_server_error": "low"}})
    second = run_stage(tmp_path / "b", port, "dast", {**DAST, "seed": 2})

    fingerprints = {f.rule: f.fingerprint for f in first.findings}
    assert fingerprints == {f.rule: f.fingerprint for f in second.findings}
    server_error = next(f for f in first.findings if f.rule == "not_a_server_error")
    assert (server_error.severity.value, server_error.blocking) == ("low", False)


def test_a_schema_nobody_serves_is_an_error_naming_schemathesis_words(tmp_path):
    result = run_stage(tmp_path, free_port(), "dast", {"openapi": "{base_url}/openapi.json", "max_time_s": 5})

    assert result.status is Status.error
    assert "Schema Loading Error" in result.error and "dast.openapi" in result.error


def test_an_unparseable_schema_file_is_an_error(fastapi_service, tmp_path):
    _, port = fastapi_service
    (tmp_path / "openapi.yaml").write_text("openapi: [3.0\npaths: {")
    result = run_stage(tmp_path, port, "dast", {"openapi": "openapi.yaml", "max_time_s": 5})

    assert result.status is Status.error and "Schema Loading Error" in result.error


@pytest.mark.parametrize(("output", "ending", "said"), [
    ("full", "sigkill", "killed by SIGKILL"),
    ("none", "exit0", "no readable run report"),
    ("full", "exit3", "exited 3"),
    ("full", "hang", "timed out after 2 s"),
])
def test_a_fake_schemathesis_that_crashes_or_writes_nothing_is_an_error(fastapi_service, tmp_path, monkeypatch,
                                                                        output, ending, said):
    _, port = fastapi_service
    report = '{"failures": [], "errors": [], "operations": {"tested": 2}}'
    tool = fake_tool(tmp_path / "bin", "schemathesis", "emit(option('--report-json-path'), REPORT)",
                     {"REPORT": report}, output=output, ending=ending)
    monkeypatch.setenv("RELEASEGATE_SCHEMATHESIS_BIN", str(tool))

    result = run_stage(tmp_path, port, "dast", {"openapi": "{base_url}/openapi.json", "timeout_s": 2})

    assert result.status is Status.error and said in result.error


def test_a_report_naming_failures_the_events_do_not_hold_is_an_error(fastapi_service, tmp_path, monkeypatch):
    _, port = fastapi_service
    report = ('{"failures": [{"code": "ST101", "operations": ["GET /x"]}], "errors": [], '
              '"operations": {"tested": 1}}')
    tool = fake_tool(tmp_path / "bin", "schemathesis", "emit(option('--report-json-path'), REPORT)",
                     {"REPORT": report}, output="full", ending="exit1")
    monkeypatch.setenv("RELEASEGATE_SCHEMATHESIS_BIN", str(tool))

    result = run_stage(tmp_path, port, "dast", {"openapi": "{base_url}/openapi.json"})

    assert result.status is Status.error and "GET /x" in result.error and "partial" in result.error


CALLERS = {
    "anonymous": {},
    "user": {"setup": {"path": "/session", "json": {"password": "pw-for-tests-2"}, "token_field": "data.token"}},
    "admin": {"token": "admin-token-7730"},
    "forged": {"forge": "user"},
    "malformed": {"token": "garbage"},
}


def test_the_matrix_reports_each_cell_that_answers_otherwise_on_a_service_without_openapi(flask_service, tmp_path):
    _, port = flask_service
    spec = {"callers": CALLERS, "endpoints": [
        {"method": "POST", "path": "/orders", "json": {"n": 1},
         "expect": {"anonymous": "401|403", "forged": "401|403", "malformed": "401", "user": "2xx", "admin": "2xx"}},
        {"method": "DELETE", "path": "/orders/1", "expect": {"anonymous": "401|403", "user": "403", "admin": "2xx"}},
        {"method": "GET", "path": "/public", "expect": {"anonymous": "2xx"}},
    ]}
    result = run_stage(tmp_path, port, "authz", spec)

    assert result.status is Status.failed
    assert [f.title for f in result.findings] == ["DELETE /orders/1 as user answered HTTP 204 where 403 is required"]
    assert {m.name: m.value for m in result.metrics}["cells"] == 9
    matrix = (tmp_path / "evidence" / "authz" / "matrix.json").read_text()
    assert "user-token-5521" not in matrix and "pw-for-tests-2" not in matrix


def test_a_matrix_whose_setup_request_fails_is_an_error(flask_service, tmp_path):
    _, port = flask_service
    callers = {**CALLERS, "user": {"setup": {"path": "/session", "json": {"password": "wrong-password"}}}}
    spec = {"callers": callers, "endpoints": [{"method": "GET", "path": "/public", "expect": {"user": "2xx"}}]}
    result = run_stage(tmp_path, port, "authz", spec)

    assert result.status is Status.error
    assert "callers.user.setup: POST /session answered HTTP 401" in result.error


def test_a_matrix_against_nothing_listening_is_an_error(tmp_path):
    spec = {"callers": {"anonymous": {}}, "endpoints": [{"method": "GET", "path": "/", "expect": {"anonymous": "2xx"}}]}
    result = run_stage(tmp_path, free_port(), "authz", spec)

    assert result.status is Status.error and "did not answer" in result.error


def test_the_matrix_answers_are_checked_for_version_headers_and_missing_security_headers(flask_service, tmp_path):
    _, port = flask_service
    spec = {"callers": {"anonymous": {}}, "forbid_headers": ["Server"], "require_headers": ["X-Content-Type-Options"],
            "endpoints": [{"method": "GET", "path": "/public", "expect": {"anonymous": "2xx"}}]}
    result = run_stage(tmp_path, port, "authz", spec)

    assert result.status is Status.failed
    assert sorted(f.rule for f in result.findings) == ["missing-header:x-content-type-options", "version-header:server"]
    assert all(f.kind == "hygiene" and f.severity.value == "high" for f in result.findings)


def test_a_self_signed_certificate_is_a_transport_finding(tmp_path):
    import datetime as dt
    import socket
    import ssl
    import threading

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from releasegate.stages.hygiene import tls_problems

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve_one():
        conn, _ = listener.accept()
        try:
            context.wrap_socket(conn, server_side=True).close()
        except (ssl.SSLError, OSError):
            conn.close()  # the client refused the certificate: what this test expects

    thread = threading.Thread(target=serve_one, daemon=True)
    thread.start()
    try:
        problems = tls_problems(f"https://127.0.0.1:{port}", 5)
    finally:
        thread.join(timeout=5)
        listener.close()
    assert len(problems) == 1 and problems[0].startswith("certificate does not verify: self")
