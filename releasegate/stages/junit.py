"""JUnit XML (as pytest and most runners write it) into TestCases: one pure function."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from releasegate.errors import StageError
from releasegate.models import TestCase

_OUTCOME_TAGS = (("failure", "failed"), ("error", "error"), ("skipped", "skipped"))


def parse_junit(text: str, source: str = "junit.xml") -> list[TestCase]:
    try:
        root = ET.fromstring(text)
    except ET.ParseError as exc:
        raise StageError(f"{source}: JUnit XML cannot be read ({exc}) — the test run was probably cut short") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise StageError(f"{source}: not JUnit XML (root element <{root.tag}>)")
    return [_case(node) for node in root.iter("testcase")]


def _case(node: ET.Element) -> TestCase:
    outcome, message = "passed", ""
    for tag, name in _OUTCOME_TAGS:
        child = node.find(tag)
        if child is not None:
            outcome = name
            message = (child.get("message") or "") + ("\n" + child.text if child.text else "")
            break
    return TestCase(node_id=_node_id(node), outcome=outcome, duration_s=float(node.get("time") or 0),
                    message=message.strip()[:4000])


def _node_id(node: ET.Element) -> str:
    for prop in node.iter("property"):
        if prop.get("name") == "nodeid":
            return prop.get("value") or ""
    classname, name = node.get("classname") or "", node.get("name") or ""
    return f"{classname}::{name}" if classname else name
