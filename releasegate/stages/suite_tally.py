"""A suite's test cases counted as they stream out of its JUnit XML, in memory bounded by its failing cases.

Failing and erroring cases are kept whole (they are rerun, judged and reported in full); the others are counted
per module and written to a spool file (``cases-<attempt>.tsv``, COPY text format, redacted) from which the gate
database gets every per-case row; the first ``SAMPLE`` of them stay in memory too, so a small suite's result
still lists every case. A node id reported twice counts once; a failing report of it wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from persistence.bulk import copy_text
from releasegate.domain.models import TestCase, TestGroup
from releasegate.redact import redact, redact_file
from releasegate.stages.junit import CaseRow

FAILING = frozenset({"failed", "error"})
SAMPLE = 1_000
_UNESCAPES = {"\\\\": "\\", "\\t": "\t", "\\n": "\n", "\\r": "\r"}


def module_of(node_id: str) -> str:
    """The test file (or class path) a case belongs to: its node id up to the first ``::``."""
    return node_id.split("::", 1)[0] or "(no module)"


class SuiteTally:
    """``add`` every case, then ``close``; ``spool`` None keeps every case in memory (a rerun of a few)."""

    def __init__(self, spool: Path | None, sample: int = SAMPLE) -> None:
        self.kept: dict[str, TestCase] = {}
        self.counts: Counter[str] = Counter()          # of the spooled cases: passed, skipped
        self.groups: dict[str, list[int]] = {}        # module -> [passed, skipped, duration in ms] of spooled cases
        self._order: dict[str, int] = {}
        self._sample = sample
        self._spooled: dict[int, str] = {}               # hash of a spooled case's node id -> its outcome
        self.spool = spool
        self._out = spool.open("w", encoding="utf-8", newline="\n") if spool is not None else None

    def add(self, case: CaseRow) -> None:
        if self._out is None or case.outcome in FAILING:
            self._keep(case)
            return
        key = hash(case.node_id)
        if key in self._spooled or case.node_id in self.kept:
            return
        self._spooled[key] = case.outcome
        self._count(case.node_id, case.outcome, case.duration_s, 1)
        message = copy_text(case.message) if case.message else ""
        self._out.write(f"{copy_text(case.node_id)}\t{case.outcome}\t{case.duration_s!r}\t{message}\n")
        if len(self._order) < self._sample:
            self._order[case.node_id] = len(self._order)
            self.kept[case.node_id] = _model(case)

    def _keep(self, case: CaseRow) -> None:
        spooled = self._spooled.pop(hash(case.node_id), None) if self._out is not None else None
        if spooled is not None:  # reported passing before: the failing report wins
            self._count(case.node_id, spooled, 0.0, -1)
        self._order.setdefault(case.node_id, len(self._order))
        self.kept[case.node_id] = _model(case)

    def _count(self, node_id: str, outcome: str, duration_s: float, sign: int) -> None:
        self.counts[outcome] += sign
        module = module_of(node_id)
        group = self.groups.get(module)
        if group is None:
            group = self.groups[module] = [0, 0, 0]
        group[0 if outcome == "passed" else 1] += sign
        group[2] += round(duration_s * 1000) * sign

    def close(self) -> None:
        """Finish the spool file and redact it in place (the passing cases' ids and skip reasons)."""
        if self._out is not None and self.spool is not None:  # the spool is open only when there is one
            self._out.close()
            self._out = None
            redact_file(self.spool, self.spool)

    def outcomes(self) -> Counter[str]:
        """Every case by outcome, each node id once."""
        counts = Counter(self.counts)
        counts.update(c.outcome for c in self.kept.values() if self.spool is None or c.outcome in FAILING)
        return counts

    def spooled(self, node_id: str) -> bool:
        """Whether the case went to the spool (and is counted in ``counts`` and ``groups``)."""
        return self.spool is not None and hash(node_id) in self._spooled

    def failing(self) -> list[TestCase]:
        return [c for c in self.kept.values() if c.outcome in FAILING]

    def cases(self) -> list[TestCase]:
        """The cases held in memory, in the order the document gave them."""
        return sorted(self.kept.values(), key=lambda c: self._order[c.node_id])


def test_groups(tally: SuiteTally, cases: list[TestCase]) -> list[TestGroup]:
    """Per module: counts by outcome and the summed duration, of the spooled cases and of ``cases`` (the held
    cases after reruns: failing, flaky, and for a suite without spool, all)."""
    groups = {module: Counter(passed=g[0], skipped=g[1], duration_ms=g[2]) for module, g in tally.groups.items()}
    for case in cases:
        if tally.spooled(case.node_id):
            continue  # counted as it was spooled
        group = groups.setdefault(module_of(case.node_id), Counter())
        group[case.outcome] += 1
        group["duration_ms"] += round(case.duration_s * 1000)
    return [TestGroup(module=module, passed=g["passed"], failed=g["failed"], error=g["error"],
                      skipped=g["skipped"], flaky=g["flaky"], duration_s=g["duration_ms"] / 1000)
            for module, g in sorted(groups.items())]


def read_spool(path: Path) -> Iterator[tuple[str, str, float, int, str]]:
    """The spooled cases as (node_id, outcome, duration_s, attempts, message) rows."""
    with path.open(encoding="utf-8", newline="\n") as lines:
        for line in lines:
            fields = line.rstrip("\n").split("\t")
            if len(fields) != 4:
                continue  # not a row the tally wrote
            node_id, outcome, duration, message = fields
            yield _unescape(node_id), outcome, float(duration), 1, _unescape(message)


def _unescape(text: str) -> str:
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        pair = text[i:i + 2]
        if pair in _UNESCAPES:
            out.append(_UNESCAPES[pair])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def _model(case: CaseRow) -> TestCase:
    return TestCase(node_id=case.node_id, outcome=case.outcome, duration_s=case.duration_s,
                    message=redact(case.message) if case.message else "")
