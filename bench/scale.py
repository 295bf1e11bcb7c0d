"""Large suites and many findings: each row of work against a baseline measured in the same run, with peak RSS.

    python bench/scale.py                 # 2,000 and 20,000 cases (findings: a tenth of that)
    python bench/scale.py --full          # and 200,000 cases with 20,000 findings (minutes; RELEASEGATE_BENCH_FULL=1)
    python bench/scale.py --sizes 200000  # one size

Every measurement runs in a fresh child process (``--child``), so its peak RSS (``ru_maxrss``) is its own: the
baseline's child does the baseline only. The database is PostgreSQL when one answers at
$RELEASEGATE_BENCH_PG (default postgresql://postgres@127.0.0.1:5432/postgres; a scratch database is created and
dropped), and SQLite in a temporary folder always.

| row | ours | baseline |
|---|---|---|
| parse JUnit | iter_junit over the file | ElementTree iterparse, each testcase cleared |
| parse + build results | the suite's tally, spool, groups, findings, StageResult | the same iterparse |
| store results | StageRepository.upsert (cases from the spool) | COPY (PostgreSQL) / sqlite3 executemany of the same rows |
| store findings | StageRepository.upsert of a stage's findings | COPY / executemany of the same rows |
| defects + audit | defects.record (transitions and the defects as they stand) + the audit batch (one event per stage and move), one transaction | COPY / executemany of the same rows |
| compile report | render_report (as the pipeline calls it: results redacted where they entered) | the same results rendered plainly: json.dumps, and a Jinja table row per finding |
| redact | redact() on 25k/50k/100k-character tokens | time per character must stay flat (linear) |
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG_ADMIN = os.environ.get("RELEASEGATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
RUN = "bench-run"
FAIL_EVERY = 50  # 2 % of the cases fail


# --- data --------------------------------------------------------------------------------------------

def write_junit(path: Path, cases: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        out.write(f'<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="{cases}">\n')
        for i in range(cases):
            module = f"tests/unit/test_m{i % 400}.py"
            body = ('<failure message="assert 1 == 2">def test():\n&gt;   assert 1 == 2\nE   assert 1 == 2</failure>'
                    if i % FAIL_EVERY == 0 else "")
            out.write(f'<testcase classname="tests.unit.test_m{i % 400}" name="test_{i}[param-{i % 7}]" '
                      f'time="0.00{i % 10}"><properties><property name="nodeid" value="{module}::test_{i}'
                      f'[param-{i % 7}]"/></properties>{body}<system-out>captured line {i}</system-out>'
                      f"</testcase>\n")
        out.write("</testsuite></testsuites>\n")


def findings(count: int) -> list[dict]:
    from releasegate.domain.models import Finding, Severity

    sev = [Severity.low, Severity.medium, Severity.high, Severity.critical]
    return [Finding(kind="vulnerability" if i % 2 else "sast", rule=f"rule-{i % 300}", severity=sev[i % 4],
                    title=f"finding {i}: something is built from strings in module {i % 97}",
                    location=f"pkg{i % 150}" if i % 2 else f"src/app/m{i % 97}.py:{i}",
                    evidence=f"query = 'SELECT * FROM t WHERE id=' + str(value_{i})", fingerprint=f"{i:064x}",
                    blocking=i % 3 == 0, data={"i": i}).model_dump(mode="json") for i in range(count)]


# --- databases ---------------------------------------------------------------------------------------

def pg_scratch() -> str | None:
    from sqlalchemy import create_engine, make_url, text

    try:
        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        name = f"releasegate_bench_{secrets.token_hex(4)}"
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    except Exception:  # noqa: BLE001 - no PostgreSQL here: SQLite only
        return None


def pg_drop(url: str) -> None:
    from sqlalchemy import create_engine, make_url, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def fresh_engine(url: str):
    """The gate's schema on an emptied database, and a run row to hang results on."""
    from sqlalchemy import text

    from persistence import UnitOfWork, engine_from_url
    from persistence.migrate import ensure_schema

    if url.startswith("postgresql"):
        engine = engine_from_url(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        engine.dispose()
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
    ensure_schema(url)
    engine = engine_from_url(url)
    with UnitOfWork(engine) as uow:
        uow.runs.upsert({"run_id": RUN, "service": "bench", "version": "1", "policy_path": "gate.yaml",
                         "policy_digest": "sha256:0", "evidence_dir": "", "started_at": T0, "status": "running"})
        uow.commit()
    return engine


def baseline_insert(engine, table: str, columns: list[str], rows: list[tuple]) -> float:
    """COPY (PostgreSQL) or sqlite3 executemany of ready-made rows; the seconds the write took."""
    from persistence.bulk import copy_line

    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "postgresql":
            data = io.BytesIO("".join(copy_line(r, {i for i, c in enumerate(columns) if c in ("data", "payload")})
                                      for r in rows).encode("utf-8"))
            start = time.perf_counter()
            cursor.copy_expert(f"COPY {table} ({', '.join(columns)}) FROM STDIN", data)
        else:
            rows = [tuple(json.dumps(v) if isinstance(v, dict) else v for v in r) for r in rows]
            start = time.perf_counter()
            cursor.execute("BEGIN")  # the gate's SQLite connections do not begin transactions on their own
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                               rows)
        raw.commit()
        return time.perf_counter() - start
    finally:
        raw.close()


# --- rows (each runs in its own child process) ---------------------------------------------------------

def row_parse(xml: Path, which: str, work: Path) -> float:
    from releasegate.stages.junit import iter_junit

    start = time.perf_counter()
    if which == "base":
        for _event, node in ET.iterparse(xml):
            if node.tag == "testcase":
                node.clear()
    else:
        for _case in iter_junit(xml):
            pass
    return time.perf_counter() - start


def suite_result(xml: Path, work: Path):
    from releasegate.domain.models import StageResult, Status
    from releasegate.policy import Suite
    from releasegate.stages.pytest_suites import _finding, read_cases
    from releasegate.stages.suite_tally import test_groups

    suite = Suite(name="unit")
    tally = read_cases(xml, work / "cases-1.tsv")
    cases = tally.cases()
    findings_ = [_finding(suite, c) for c in cases if c.outcome in ("failed", "error", "flaky")]
    return StageResult(stage="pytest[unit]", kind="unit", status=Status.failed, started=T0, finished=T0,
                       findings=findings_, test_cases=cases, test_groups=test_groups(tally, cases),
                       cases_file=str(tally.spool))


def row_build(xml: Path, which: str, work: Path) -> float:
    start = time.perf_counter()
    if which == "base":
        return row_parse(xml, "base", work)
    suite_result(xml, work)
    return time.perf_counter() - start


def row_store_results(xml: Path, which: str, work: Path, url: str) -> float:
    from persistence import UnitOfWork
    from persistence.repositories import CASE_COLUMNS
    from releasegate.stages.suite_tally import read_spool

    result = suite_result(xml, work)
    engine = fresh_engine(url)
    dump = result.model_dump(mode="json", exclude={"test_groups"})
    if which == "base":
        held = {c["node_id"] for c in dump["test_cases"]}
        rows = [(RUN, "pytest[unit]", c["node_id"], c["outcome"], c["duration_s"], c["attempts"], c["message"])
                for c in dump["test_cases"]]
        rows += [(RUN, "pytest[unit]", *r) for r in read_spool(Path(result.cases_file)) if r[0] not in held]
        return baseline_insert(engine, "test_cases", list(CASE_COLUMNS), rows)
    start = time.perf_counter()
    with UnitOfWork(engine) as uow:
        uow.stages.upsert(RUN, dump, cases=read_spool(Path(result.cases_file)))
        uow.commit()
    return time.perf_counter() - start


def row_store_findings(count: int, which: str, url: str) -> float:
    from persistence import UnitOfWork
    from persistence.repositories import FINDING_COLUMNS, _finding_row

    found = findings(count)
    engine = fresh_engine(url)
    stage = {"stage": "semgrep", "kind": "sast", "status": "failed", "started": T0, "finished": T0,
             "findings": found}
    if which == "base":
        return baseline_insert(engine, "findings", list(FINDING_COLUMNS),
                               [_finding_row(RUN, "semgrep", f) for f in found])
    start = time.perf_counter()
    with UnitOfWork(engine) as uow:
        uow.stages.upsert(RUN, stage)
        uow.commit()
    return time.perf_counter() - start


def row_defects(count: int, which: str, url: str) -> float:
    from persistence import UnitOfWork
    from persistence.audit import _COLUMNS, GENESIS, _row
    from persistence.defects import INSERT_COLUMNS, _describe
    from releasegate.records.audit import event_key, record_many, transition_events
    from releasegate.redact import redact_data

    found = [{**f, "stage": "semgrep"} for f in findings(count)]
    engine = fresh_engine(url)
    if which == "base":
        defects = [tuple((_describe(f) | {"service": "bench", "fingerprint": f["fingerprint"], "state": "new",
                                          "previous_state": None, "first_run_id": RUN, "last_run_id": RUN,
                                          "changed_run_id": RUN, "first_seen_at": T0, "last_seen_at": T0,
                                          "occurrences": 1, "updated_at": T0})[c] for c in INSERT_COLUMNS)
                   for f in found]
        moves = transition_events("bench", [{"fingerprint": f["fingerprint"], "from": None, "to": "new"}
                                            for f in found], {f["fingerprint"]: "semgrep" for f in found})
        events = [_row(i + 1, {**e, "at": T0, "run_id": RUN, "key": event_key(RUN, e["kind"], e["subject"], {})},
                       GENESIS)[0] for i, e in enumerate(moves)]
        return (baseline_insert(engine, "defects", list(INSERT_COLUMNS), defects)
                + baseline_insert(engine, "audit_events", list(_COLUMNS), [tuple(e[c] for c in _COLUMNS)
                                                                           for e in events]))
    start = time.perf_counter()
    with UnitOfWork(engine, scrub=redact_data) as uow:  # as the pipeline records a run's defects
        changes, _defects = uow.defects.record("bench", RUN, found, {"semgrep"}, T0)  # and the defects as they stand
        record_many(uow, transition_events("bench", changes, {d["fingerprint"]: d["stage"] for d in _defects}), T0,
                    RUN, keep=frozenset({"fingerprints"}))
        uow.commit()
    return time.perf_counter() - start


def row_report(xml: Path, count: int, which: str, work: Path) -> tuple[float, int]:
    from releasegate.domain.models import Decision, Finding, Reason, StageResult, Status, Verdict
    from releasegate.report import render_report

    suite = suite_result(xml, work)
    scan = StageResult(stage="semgrep", kind="sast", status=Status.failed, started=T0, finished=T0,
                       findings=[Finding.model_validate(f) for f in findings(count)])
    results = [suite, scan]
    reasons = [Reason(stage=r.stage, message=f.title, severity=f.severity, fingerprint=f.fingerprint)
               for r in results for f in r.findings if f.blocking]
    verdict = Verdict(decision=Decision.NO_GO, decided_at=T0, reasons=reasons)
    ctx = _context(work)
    start = time.perf_counter()
    if which == "base":  # the same results rendered plainly: the data as JSON, and an HTML row per finding
        text = json.dumps([r.model_dump(mode="json") for r in results])
        html = PLAIN_REPORT.render(results=results)
        return time.perf_counter() - start, len(text) + len(html)
    rendered = render_report(ctx, "sha256:0", results, verdict, tool_versions={"pytest": "8"}, redacted=True)
    elapsed = time.perf_counter() - start
    sizes = {name: len(doc.encode("utf-8")) for name, doc in rendered.documents.items()}
    print(json.dumps({"documents": sizes}), file=sys.stderr)
    (work / "report.html").write_text(rendered.documents["report.html"], encoding="utf-8")  # for the browser row
    return elapsed, sizes["report.html"]


class _PlainReport:
    """A report with no aggregation, register or checklist: every finding a table row, through Jinja (autoescaped)."""

    def __init__(self) -> None:
        self._template = None

    def render(self, **values) -> str:
        if self._template is None:
            from jinja2 import Environment

            self._template = Environment(autoescape=True).from_string(
                "<table>{% for r in results %}{% for f in r.findings %}<tr><td>{{ r.stage }}</td>"
                "<td>{{ f.severity.value }}</td><td>{{ f.rule }}</td><td>{{ f.title }}</td><td>{{ f.location }}</td>"
                "<td>{{ f.fingerprint }}</td></tr>{% endfor %}{% endfor %}</table>")
        return self._template.render(**values)


PLAIN_REPORT = _PlainReport()


def _context(work: Path):
    from releasegate.context import RunContext

    fields = RunContext.model_fields
    values = {"run_id": RUN, "service": "bench", "version": "1", "policy_path": str(work / "gate.yaml"),
              "evidence_dir": str(work), "started": T0}
    for name in fields:
        if name not in values and fields[name].is_required():
            values[name] = str(work)
    return RunContext.model_validate(values)


def row_redact(chars: int) -> float:
    """The best of five passes over four texts, each holding one token of ``chars`` characters."""
    from releasegate.redact import redact

    token = "eyJ" + ("aB3-_x" * (chars // 6 + 1))[:chars]
    texts = [f"token={token}", f"Authorization: Bearer {token}", f"url https://user:{token}@host/x",
             ".".join([token[: chars // 3]] * 3)]
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for text in texts:
            redact(text)
        best = min(best, time.perf_counter() - start)
    return best


REPEATS = 3  # database rows: the median of three writes on an emptied schema (a busy machine makes single runs noisy)


def median_of(times: int, measure) -> float:
    return statistics.median(measure() for _ in range(times))


def child(args: argparse.Namespace) -> None:
    import persistence.repositories  # noqa: F401 - imports are not what is measured
    import releasegate.report
    import releasegate.stages.pytest_suites  # noqa: F401

    releasegate.report.template_env().get_template("report.html.j2")
    PLAIN_REPORT.render(results=[])  # both templates compiled before anything is timed
    work = Path(args.work)
    xml = work / f"junit-{args.cases}.xml"
    size = None
    if args.row == "parse":
        seconds = row_parse(xml, args.which, work)
    elif args.row == "build":
        seconds = row_build(xml, args.which, work)
    elif args.row == "results":
        seconds = median_of(REPEATS, lambda: row_store_results(xml, args.which, work, args.url))
    elif args.row == "findings":
        seconds = median_of(REPEATS, lambda: row_store_findings(args.cases // 10, args.which, args.url))
    elif args.row == "defects":
        seconds = median_of(REPEATS, lambda: row_defects(args.cases // 10, args.which, args.url))
    elif args.row == "report":
        seconds, size = row_report(xml, args.cases // 10, args.which, work)
    else:
        seconds = row_redact(args.cases)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mib": rss, "size": size}))


# --- the parent ----------------------------------------------------------------------------------------

def measure(row: str, which: str, cases: int, work: Path, url: str = "") -> dict:
    argv = [sys.executable, __file__, "--child", row, "--which", which, "--cases", str(cases), "--work", str(work),
            "--url", url]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{row} ({which}, {cases}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_row(work_name: str, size: str, ours: dict, base: dict, base_name: str) -> None:
    ratio = ours["seconds"] / base["seconds"] if base["seconds"] else float("inf")
    print(f"| {work_name} | {size} | {ours['seconds']:.2f} s | {base_name} {base['seconds']:.2f} s | {ratio:.2f}x | "
          f"{ours['rss_mib']:.0f} MiB vs {base['rss_mib']:.0f} MiB |", flush=True)


def run_size(cases: int, pg: str | None, tmp: Path) -> None:
    work = tmp / f"w{cases}"
    work.mkdir()
    write_junit(work / f"junit-{cases}.xml", cases)
    mb = (work / f"junit-{cases}.xml").stat().st_size / 1e6
    label = f"{cases:,} cases ({mb:.0f} MB XML)"
    print_row("parse JUnit", label, measure("parse", "ours", cases, work), measure("parse", "base", cases, work),
              "iterparse")
    print_row("parse + build results", label, measure("build", "ours", cases, work),
              measure("build", "base", cases, work), "iterparse")
    databases = [("sqlite", f"sqlite:///{tmp / 'bench.db'}")] + ([("postgresql", pg)] if pg else [])
    for name, url in databases:
        copy = "COPY" if name == "postgresql" else "executemany"
        print_row(f"store a suite's results ({name})", f"{cases:,} cases",
                  measure("results", "ours", cases, work, url), measure("results", "base", cases, work, url), copy)
        print_row(f"store findings ({name})", f"{cases // 10:,}", measure("findings", "ours", cases, work, url),
                  measure("findings", "base", cases, work, url), copy)
        print_row(f"defects + audit events ({name})", f"{cases // 10:,} findings",
                  measure("defects", "ours", cases, work, url), measure("defects", "base", cases, work, url), copy)
    ours = measure("report", "ours", cases, work)
    print_row("compile the report", f"{cases:,} tests, {cases // 10:,} findings", ours,
              measure("report", "base", cases, work), "plain (JSON + a row per finding)")
    print(f"| report.html | {cases:,} tests, {cases // 10:,} findings | {ours['size'] / 1e6:.2f} MB | | | |", flush=True)
    run_browser(cases, work)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def browser_seconds(page: Path, work: Path) -> float:
    """Headless Chromium loading the page, laying it out and painting a screenshot (the best of three)."""
    best = float("inf")
    for attempt in range(3):
        profile = work / f"chromium-profile-{attempt}"
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={profile}", "--window-size=1280,2000", f"--screenshot={work / 'shot.png'}",
                page.as_uri()]
        start = time.perf_counter()
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        best = min(best, time.perf_counter() - start)
        shutil.rmtree(profile, ignore_errors=True)
        if done.returncode != 0:
            raise SystemExit(f"chromium failed on {page}: {done.stderr[-1500:]}")
    return best


def run_browser(cases: int, work: Path) -> None:
    if CHROMIUM is None:
        print(f"| report.html in Chromium | {cases:,} tests | not measured: no chromium (scripts/install-system-deps.sh) "
              "| | | |", flush=True)
        return
    empty = work / "empty.html"
    empty.write_text("<!doctype html><title>empty</title><p>empty</p>", encoding="utf-8")
    ours, blank = browser_seconds(work / "report.html", work), browser_seconds(empty, work)
    print(f"| report.html rendered by Chromium (headless screenshot) | {cases:,} tests, {cases // 10:,} findings | "
          f"{ours:.2f} s | an empty page {blank:.2f} s | {ours - blank:.2f} s for the report itself | |", flush=True)


def run_redact(tmp: Path) -> None:
    sizes = (100_000, 200_000, 400_000)
    times = {n: measure("redact", "ours", n, tmp)["seconds"] for n in sizes}
    per_char = {n: t / n * 1e9 for n, t in times.items()}
    print(f"| redact (4 texts, one token each) | 100k / 200k / 400k chars | "
          f"{' / '.join(f'{t * 1000:.1f} ms' for t in times.values())} | {per_char[sizes[0]]:.0f} ns per char at 100k | "
          f"{per_char[sizes[-1]] / per_char[sizes[0]]:.2f}x per char at 4x the length (1.0 = linear) | |", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", default=os.environ.get("RELEASEGATE_BENCH_FULL") == "1")
    parser.add_argument("--sizes", type=int, nargs="*")
    parser.add_argument("--child")
    parser.add_argument("--which", default="ours")
    parser.add_argument("--cases", type=int, default=0)
    parser.add_argument("--work", default="")
    parser.add_argument("--url", default="")
    args = parser.parse_args(argv)
    if args.child:
        args.row = args.child
        child(args)
        return
    sizes = args.sizes or ([2_000, 20_000, 200_000] if args.full else [2_000, 20_000])
    pg = pg_scratch()
    print(f"scale: PostgreSQL {'at ' + PG_ADMIN if pg else 'not reachable: SQLite only'}; sizes {sizes}")
    print("| work | size | releasegate | baseline | ratio | peak RSS (ours vs baseline) |")
    print("|---|---|---|---|---|---|")
    try:
        with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
            run_redact(Path(tmp))
            for cases in sizes:
                run_size(cases, pg, Path(tmp))
    finally:
        if pg:
            pg_drop(pg)


if __name__ == "__main__":
    main()
