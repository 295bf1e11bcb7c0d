"""Start or stop a real Airflow topology on loopback for the gate: the same settings as docker-compose.yml.

    eval "$(.venv/bin/python scripts/cluster.py up --executor celery --workers 2)"
    .venv/bin/releasegate trigger --service inventory --version 1.1.0 --policy include/demo/gate.yaml --wait
    .venv/bin/python scripts/cluster.py down

`up` creates two PostgreSQL databases (Airflow's metadata, the gate's own), migrates both, creates the
`releasegate_host` pool, starts api-server, scheduler and dag-processor (and, for CeleryExecutor, N
`airflow celery worker` processes on Redis) as real processes, waits until they are healthy and the DAG is
parsed, and prints `export` lines: the API's URL and the credentials `releasegate trigger` reads.
`down` stops every process it started, by pid (checking each pid is still that process), and drops the
databases. Everything lives under --home (default: .cluster/ in the checkout): state, logs, gate evidence.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOL, POOL_SLOTS = "releasegate_host", 4  # dags/release_gate.py: HOST_POOL, HOST_SLOTS
SERVICE_QUEUE = "releasegate_service"
PG = os.environ.get("RELEASEGATE_CLUSTER_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
REDIS = os.environ.get("RELEASEGATE_CLUSTER_REDIS", "redis://127.0.0.1:6379")
USER = "admin"
APPROVER = "approver"  # a second Airflow user: the approval step refuses the one who triggered the run


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(f"cluster: {message}", file=sys.stderr, flush=True)


# --- state -------------------------------------------------------------------------------------------

def state_file(home: Path) -> Path:
    return home / "cluster.json"


def load_state(home: Path) -> dict:
    path = state_file(home)
    return json.loads(path.read_text()) if path.is_file() else {}


def save_state(home: Path, state: dict) -> None:
    tmp = state_file(home).with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(state_file(home))


# --- databases ---------------------------------------------------------------------------------------

def admin_connection():
    import psycopg2

    dsn = PG.replace("postgresql+psycopg2://", "postgresql://") + "/postgres"
    connection = psycopg2.connect(dsn, connect_timeout=10)
    connection.autocommit = True
    return connection


def admin_sql(*statements: tuple[str, tuple]) -> list:
    connection = admin_connection()
    try:
        with connection.cursor() as cursor:
            rows = []
            for sql, params in statements:
                cursor.execute(sql, params)
                rows.append(cursor.fetchall() if cursor.description else None)
            return rows
    finally:
        connection.close()


def create_database(name: str) -> str:
    if not admin_sql(("SELECT 1 FROM pg_database WHERE datname = %s", (name,)))[0]:
        admin_sql((f'CREATE DATABASE "{name}"', ()))
    return f"{PG}/{name}"


def drop_database(name: str) -> None:
    admin_sql(("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)),
              (f'DROP DATABASE IF EXISTS "{name}"', ()))


def redis_client(db: int):
    import redis

    return redis.Redis.from_url(f"{REDIS}/{db}", socket_connect_timeout=5)


def empty_redis_db(home: Path) -> int:
    """An empty Redis database number for this cluster's broker, claimed with a marker key (down flushes it)."""
    for db in range(1, 16):
        client = redis_client(db)
        if client.dbsize() == 0 and client.set("releasegate:cluster", str(home), nx=True):
            return db
    raise SystemExit(f"cluster: no empty Redis database at {REDIS} (1-15 all hold keys)")


# --- settings (docker-compose.yml sets the same) -------------------------------------------------------

def settings(home: Path, state: dict) -> dict[str, str]:
    env = {
        "AIRFLOW_HOME": str(home / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "AIRFLOW__CORE__EXECUTOR": state["executor"],
        "AIRFLOW__CORE__PARALLELISM": "8",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:admin,{APPROVER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{state['api_port']}/execution/",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": state["metadata_url"],
        "AIRFLOW__API__PORT": str(state["api_port"]),
        "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{state['api_port']}",
        "AIRFLOW__API__WORKERS": "1",
        "AIRFLOW__API_AUTH__JWT_SECRET": state["jwt_secret"],
        "AIRFLOW__API__SECRET_KEY": state["jwt_secret"],
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(state["log_port"]),
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # how often the scheduler resolves approval steps past their deadline (default 15 s)
        "AIRFLOW__SCHEDULER__TRIGGER_TIMEOUT_CHECK_INTERVAL": "3",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "30",
        "RELEASEGATE_HOME": str(home / "gate"),
        "RELEASEGATE_DB_URL": state["gate_url"],
        "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
    }
    if state["executor"] == "CeleryExecutor":
        env.update({
            "AIRFLOW__CELERY__BROKER_URL": f"{REDIS}/{state['redis_db']}",
            "AIRFLOW__CELERY__RESULT_BACKEND": "db+" + state["metadata_url"].replace("+psycopg2", ""),
            "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
            "RELEASEGATE_SERVICE_QUEUE": SERVICE_QUEUE,
        })
    return env


def airflow(home: Path, state: dict, *args: str, timeout: float = 600) -> str:
    proc = subprocess.run([str(BIN / "airflow"), *args], env={**os.environ, **settings(home, state)},
                          capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"cluster: `airflow {' '.join(args)}` failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-3000:] or proc.stdout[-3000:]}")
    return proc.stdout


def start(home: Path, state: dict, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
    logs = home / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / f"{name}.log", "ab") as out:
        proc = subprocess.Popen([str(BIN / "airflow"), *args], stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True, cwd=home,
                                env={**os.environ, **settings(home, state), **(extra or {})})
    import psutil

    state["processes"].append({"name": name, "pid": proc.pid, "created": psutil.Process(proc.pid).create_time()})
    save_state(home, state)
    log(f"started {name} (pid {proc.pid}); log: {logs / (name + '.log')}")


# --- health ------------------------------------------------------------------------------------------

def token(state: dict) -> str:
    import requests

    response = requests.post(f"http://127.0.0.1:{state['api_port']}/auth/token",
                             json={"username": USER, "password": state["password"]}, timeout=10)
    response.raise_for_status()
    return response.json()["access_token"]


def wait_until(what: str, check, timeout_s: float, home: Path, state: dict) -> None:
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        dead = [p["name"] for p in state["processes"] if not alive(p)]
        if dead:
            raise SystemExit(f"cluster: {', '.join(dead)} exited while waiting for {what} — see {home / 'logs'}")
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not up yet; the last error is reported on timeout
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(1)
    raise SystemExit(f"cluster: {what} not ready within {timeout_s:g} s ({last}) — see {home / 'logs'}")


def api_healthy(state: dict) -> bool:
    import requests

    health = requests.get(f"http://127.0.0.1:{state['api_port']}/api/v2/monitor/health", timeout=5).json()
    return all(health.get(part, {}).get("status") == "healthy" for part in ("metadatabase", "scheduler", "dag_processor"))


def dag_parsed(state: dict) -> bool:
    import requests

    headers = {"Authorization": f"Bearer {token(state)}"}
    base = f"http://127.0.0.1:{state['api_port']}/api/v2"
    errors = requests.get(f"{base}/importErrors", headers=headers, timeout=10).json()
    if errors.get("total_entries"):
        raise SystemExit(f"cluster: the DAG folder has import errors: {errors['import_errors'][0]['stack_trace'][-2000:]}")
    response = requests.get(f"{base}/dags/release_gate", headers=headers, timeout=10)
    return response.status_code == 200 and not response.json().get("is_paused")


def workers_ready(home: Path, state: dict) -> bool:
    names = [p["name"] for p in state["processes"] if p["name"].startswith("worker")]
    return all(" ready." in (home / "logs" / f"{name}.log").read_text(errors="replace") for name in names)


# --- processes -----------------------------------------------------------------------------------------

def alive(entry: dict) -> bool:
    import psutil

    try:
        return abs(psutil.Process(entry["pid"]).create_time() - entry["created"]) < 1
    except psutil.NoSuchProcess:
        return False


def stop(entry: dict, timeout_s: float = 20) -> str:
    """Stop one process this script started (and its session's group), only if the pid is still that process."""
    import psutil

    if not alive(entry):
        return f"{entry['name']} (pid {entry['pid']}) already gone"
    proc = psutil.Process(entry["pid"])
    family = [proc, *proc.children(recursive=True)]
    try:
        os.killpg(entry["pid"], signal.SIGTERM)
    except ProcessLookupError:
        pass
    _gone, left = psutil.wait_procs(family, timeout=timeout_s)
    for straggler in left:
        try:
            straggler.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(left, timeout=5)
    return f"stopped {entry['name']} (pid {entry['pid']})" + (f", killed {len(left)} straggler(s)" if left else "")


def stop_started_by_the_cluster(home: Path) -> list[str]:
    """What the cluster's tasks started in sessions of their own (a service under test, its dependencies, the
    fault proxy) and left running because a run was cut short: every process whose environment carries this
    cluster's RELEASEGATE_HOME, or that runs in a folder under it (a server such as redis-server rewrites the
    memory its environment is read from when it sets its title). The gate's own teardown stops them in a run
    that ends; this is for one that did not."""
    import psutil

    gate_home = str(home / "gate")
    found = []
    for proc in psutil.process_iter(["pid", "name"]):
        if proc.pid != os.getpid() and _belongs_to(proc, gate_home):
            found.append(proc)
    for proc in found:
        try:
            proc.terminate()
        except psutil.NoSuchProcess:
            pass
    _gone, left = psutil.wait_procs(found, timeout=10)
    for proc in left:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return [f"stopped {p.info.get('name')} (pid {p.pid}) that a cut-short run left" for p in found]


def _belongs_to(proc, gate_home: str) -> bool:
    import psutil

    probes = (lambda: proc.environ().get("RELEASEGATE_HOME") == gate_home,
              lambda: Path(proc.cwd()).is_relative_to(gate_home))
    for probe in probes:
        try:
            if probe():
                return True
        except psutil.Error:
            continue
    return False


# --- commands ------------------------------------------------------------------------------------------

def up(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    if load_state(home).get("processes"):
        raise SystemExit(f"cluster: {home} already has a cluster — run `scripts/cluster.py down --home {home}` first")
    try:
        return _up(args)
    except BaseException:
        log("start-up failed: stopping what was started")
        down(args)
        raise


def _up(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    tag = "rg_cluster_" + hashlib.sha256(str(home).encode()).hexdigest()[:10]
    executor = {"local": "LocalExecutor", "celery": "CeleryExecutor"}[args.executor]
    state = {"executor": executor, "databases": [f"{tag}_airflow", f"{tag}_gate"], "processes": [],
             "api_port": args.port or free_port(), "log_port": free_port(), "jwt_secret": secrets.token_hex(16),
             "password": secrets.token_urlsafe(12), "approver_password": secrets.token_urlsafe(12)}
    if executor == "CeleryExecutor":
        state["redis_db"] = empty_redis_db(home)
    save_state(home, state)
    state["metadata_url"] = create_database(state["databases"][0])
    state["gate_url"] = create_database(state["databases"][1])
    (home / "passwords.json").write_text(json.dumps({USER: state["password"], APPROVER: state["approver_password"]}))
    save_state(home, state)
    log(f"{executor}: migrating the metadata database {state['databases'][0]}")
    airflow(home, state, "db", "migrate")
    subprocess.run([str(BIN / "releasegate"), "db", "upgrade"], env={**os.environ, **settings(home, state)},
                   check=True, capture_output=True, timeout=300)
    airflow(home, state, "pools", "set", POOL, str(POOL_SLOTS),
            "release_gate: tasks that load the host take 1 slot; a measurement takes all")
    start(home, state, "api-server", ["api-server", "--port", str(state["api_port"]), "--workers", "1"])
    start(home, state, "scheduler", ["scheduler"])
    start(home, state, "dag-processor", ["dag-processor"])
    if executor == "CeleryExecutor":
        for n in range(1, args.workers + 1):
            queues = f"default,{SERVICE_QUEUE}" if n == 1 else "default"
            start(home, state, f"worker{n}", ["celery", "worker", "--celery-hostname", f"worker{n}@%h",
                                              "--queues", queues, "--concurrency", "4"],
                  {"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})
        wait_until("celery workers", lambda: workers_ready(home, state), 120, home, state)
    wait_until("api-server, scheduler and dag-processor", lambda: api_healthy(state), 180, home, state)
    wait_until("the release_gate DAG", lambda: dag_parsed(state), 180, home, state)
    log(f"ready: http://127.0.0.1:{state['api_port']} ({executor}"
        + (f", {args.workers} workers" if executor == "CeleryExecutor" else "") + ")")
    exports = {"RELEASEGATE_AIRFLOW_URL": f"http://127.0.0.1:{state['api_port']}",
               "RELEASEGATE_AIRFLOW_USERNAME": USER, "RELEASEGATE_AIRFLOW_PASSWORD": state["password"],
               "RELEASEGATE_CLUSTER_HOME": str(home), "RELEASEGATE_HOME": str(home / "gate"),
               "RELEASEGATE_DB_URL": state["gate_url"], "RELEASEGATE_CLUSTER_APPROVER": APPROVER,
               "RELEASEGATE_CLUSTER_APPROVER_PASSWORD": state["approver_password"]}
    print("\n".join(f"export {k}={shlex.quote(v)}" for k, v in exports.items()))
    return 0


def down(args: argparse.Namespace) -> int:
    home = Path(args.home).resolve()
    state = load_state(home)
    if not state:
        log(f"no cluster under {home}")
        return 0
    for entry in reversed(state.get("processes", [])):
        log(stop(entry))
    for line in stop_started_by_the_cluster(home):
        log(line)
    for name in state.get("databases", []):
        try:
            drop_database(name)
            log(f"dropped database {name}")
        except Exception as exc:  # noqa: BLE001 - report and go on: the processes are stopped either way
            log(f"could not drop database {name}: {exc}")
    if "redis_db" in state:
        redis_client(state["redis_db"]).flushdb()
        log(f"emptied Redis database {state['redis_db']}")
    state_file(home).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cluster.py", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start_cmd = sub.add_parser("up", help="start the topology and print export lines")
    start_cmd.add_argument("--executor", choices=["local", "celery"], default="local")
    start_cmd.add_argument("--workers", type=int, default=2, help="Celery workers (CeleryExecutor only)")
    start_cmd.add_argument("--home", default=str(ROOT / ".cluster"))
    start_cmd.add_argument("--port", type=int, default=0, help="the API server's port (default: a free one)")
    start_cmd.set_defaults(func=up)
    stop_cmd = sub.add_parser("down", help="stop everything `up` started and drop its databases")
    stop_cmd.add_argument("--home", default=str(ROOT / ".cluster"))
    stop_cmd.set_defaults(func=down)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
