"""The self-gate's waiver file (gate-waivers.yaml), read by scripts/selfgate_waivers.py before `make selfgate` runs."""

from __future__ import annotations

import importlib.util
import re
import sys
from datetime import date
from pathlib import Path

import pytest
import yaml

from releasegate.domain import waiver_rules

ROOT = Path(__file__).resolve().parents[2]


def _script():
    spec = importlib.util.spec_from_file_location("selfgate_waivers", ROOT / "scripts" / "selfgate_waivers.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up while it is created
    spec.loader.exec_module(module)
    return module


def test_the_committed_waivers_name_full_fingerprints_two_people_and_a_date():
    entries = _script().parse_entries(yaml.safe_load((ROOT / "gate-waivers.yaml").read_text()), "gate-waivers.yaml")

    assert entries and all(len(e.fingerprint) == 32 and int(e.fingerprint, 16) >= 0 for e in entries)
    assert len({e.fingerprint for e in entries}) == len(entries)
    assert not [e for e in entries if waiver_rules.same_person(e.requested_by, e.approver)]
    assert all(isinstance(e.expires, date) for e in entries)


ENTRY = {"fingerprint": "0f" * 16, "finding": "a.py: x", "reason": "why", "requested_by": "alice",
         "approver": "bob", "expires": "2027-03-01"}


@pytest.mark.parametrize(("doc", "message"), [
    ({"waiver": []}, "expected a top-level 'waivers:' list"),
    ({"waivers": [{k: v for k, v in ENTRY.items() if k != "approver"}]}, "waivers[0]: expected exactly the keys"),
    ({"waivers": [ENTRY | {"reason": " "}]}, "waivers[0]: reason must be non-empty text"),
    ({"waivers": [ENTRY, ENTRY | {"expires": "1 March"}]}, "waivers[1]: expires '1 March': write a date as YYYY-MM-DD"),
])
def test_a_malformed_entry_is_refused_naming_it(doc, message):
    script = _script()

    with pytest.raises(script.WaiverFileError, match=re.escape(message)):
        script.parse_entries(doc, "w.yaml")
