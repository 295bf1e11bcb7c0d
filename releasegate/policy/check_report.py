"""What `releasegate policy check` found: the problems (field, line, fix), notes and the files it checked."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Problem:
    field: str
    line: int | None
    message: str          # what is wrong — and the fix

    def text(self, file: Path | str) -> str:
        where = f"{file}:{self.line}" if self.line else str(file)
        return f"{where}: {self.field}: {self.message}"


@dataclass
class CheckReport:
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)      # what could not be checked, and why
    checked: list[str] = field(default_factory=list)    # the files and folders found

    def as_dict(self) -> dict:
        return {"problems": [asdict(p) for p in self.problems], "notes": self.notes, "checked": self.checked}
