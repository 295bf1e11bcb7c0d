"""Evidence files are written whole or not at all, and the manifest never lists a half-written file."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from releasegate.atomic import Staged, atomic_writer, write_atomic
from releasegate.report import MANIFEST, manifest_text, write_manifest


def names(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = write_atomic(tmp_path / "verdict.json", '{"decision": "GO"}')

    with pytest.raises(OSError), atomic_writer(target) as out:
        out.write(b'{"decision": "INCONC')
        raise OSError(28, "No space left on device")

    assert target.read_text() == '{"decision": "GO"}' and names(tmp_path) == ["verdict.json"]


def test_staged_files_appear_only_on_commit_and_vanish_on_discard(tmp_path):
    staged = Staged()
    staged.add(tmp_path / "report.html", "<html/>")
    staged.add(tmp_path / "verdict.json", "{}")
    assert names(tmp_path) and not (tmp_path / "report.html").exists()

    staged.commit()
    assert names(tmp_path) == ["report.html", "verdict.json"]

    again = Staged()
    again.add(tmp_path / "report.html", "<html>new</html>")
    again.discard()
    assert names(tmp_path) == ["report.html", "verdict.json"] and (tmp_path / "report.html").read_text() == "<html/>"


def test_manifest_leaves_out_temporaries_and_counts_what_is_pending(tmp_path):
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "semgrep.json").write_text("{}")
    (tmp_path / ".tmp-1234-report.html").write_text("half")
    pending = {"report.html": b"<html/>"}

    expected = manifest_text(tmp_path, pending)
    (tmp_path / "report.html").write_bytes(pending["report.html"])
    os.remove(tmp_path / ".tmp-1234-report.html")
    digest = write_manifest(tmp_path)

    assert (tmp_path / MANIFEST).read_text() == expected
    assert digest == hashlib.sha256(expected.encode()).hexdigest()
    assert [line.split("  ")[1] for line in expected.splitlines()] == ["report.html", "stages/semgrep.json"]
