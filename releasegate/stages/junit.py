"""JUnit XML (as pytest and most runners write it) into test cases, streamed.

`iter_junit` reads the document incrementally (``iterparse``) and clears each ``<testcase>`` once read, so a
200,000-case file is never held as a tree; it yields light ``CaseRow`` tuples. `parse_junit` is the same
parser over a string, giving TestCase models (small documents, tests).
"""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import IO, NamedTuple

from releasegate.domain.errors import StageError
from releasegate.domain.models import TestCase

_OUTCOMES = {"failure": "failed", "error": "error", "skipped": "skipped"}
_PRECEDENCE = ("failure", "error", "skipped")
MESSAGE_CHARS = 4000


class CaseRow(NamedTuple):
    node_id: str
    outcome: str              # passed, failed, error, skipped
    duration_s: float
    message: str


def parse_junit(text: str, source: str = "junit.xml") -> list[TestCase]:
    return [TestCase(node_id=c.node_id, outcome=c.outcome, duration_s=c.duration_s, message=c.message)
            for c in iter_junit(io.StringIO(text), source)]


def iter_junit(document: Path | IO, source: str | None = None) -> Iterator[CaseRow]:
    """Each ``<testcase>`` of the document as it is read; StageError when it is not (whole) JUnit XML."""
    source = source or str(document)
    root: ET.Element | None = None
    try:
        for _event, node in ET.iterparse(document):  # "end" events only: the root ends last, and is checked then
            if node.tag == "testcase":
                yield _row(node)
                node.clear()
            elif node.tag == "testsuite":
                node.clear()
            root = node
    except ET.ParseError as exc:
        raise StageError(f"{source}: JUnit XML cannot be read ({exc}) — the test run was probably cut short") from None
    if root is None:  # iterparse raises on a document without an element; this keeps that promise explicit
        raise StageError(f"{source}: JUnit XML has no element — the test run was probably cut short")
    if root.tag not in ("testsuites", "testsuite"):
        raise StageError(f"{source}: not JUnit XML (root element <{root.tag}>)")


def _row(node: ET.Element) -> CaseRow:
    found = {child.tag: child for child in node if child.tag in _OUTCOMES}
    outcome, message = "passed", ""
    for tag in _PRECEDENCE:
        child = found.get(tag)
        if child is not None:
            outcome = _OUTCOMES[tag]
            message = ((child.get("message") or "") + ("\n" + child.text if child.text else "")).strip()
            break
    return CaseRow(_node_id(node), outcome, float(node.get("time") or 0), message[:MESSAGE_CHARS])


def _node_id(node: ET.Element) -> str:
    for prop in node.iter("property"):
        if prop.get("name") == "nodeid":
            return prop.get("value") or ""
    classname, name = node.get("classname") or "", node.get("name") or ""
    return f"{classname}::{name}" if classname else name
