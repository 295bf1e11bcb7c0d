"""Where a problem is in the policy file (field, line) and how to say it: the fix, a did-you-mean."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from releasegate.policy.model import Policy
from releasegate.policy.spec import MAX_PROBLEMS_SHOWN


def line_of(policy: Policy, loc: tuple) -> int | None:
    """The line in the policy file of a field (or of its nearest written parent)."""
    return _line_for(loc, policy._lines)


def dotted(loc: tuple) -> str:
    """`suites[0].paths[1]` for ("suites", 0, "paths", 1)."""
    return _dotted(loc)


_HINTS = {
    "int_parsing": "write a whole number, e.g. 2",
    "int_type": "write a whole number, e.g. 2",
    "float_parsing": "write a number, e.g. 300",
    "float_type": "write a number, e.g. 300",
    "bool_parsing": "write true or false",
    "bool_type": "write true or false",
    "string_type": "write text (quote it if YAML reads it as something else)",
    "list_type": "write a list, e.g. [a, b] or one '- item' per line",
    "dict_type": "write a mapping of key: value lines",
    "missing": "add it; see docs/policy.md for what it means",
    "greater_than": "use a larger value",
    "greater_than_equal": "use a larger value",
    "less_than_equal": "use a smaller value",
    "string_pattern_mismatch": "use lowercase letters, digits, - and _ only",
    "too_short": "give at least one entry",
    "finite_number": "write a finite number",
}


def _explain(file: Path, exc: ValidationError, lines: dict[tuple, int]) -> str:
    errors = exc.errors()
    messages = [_explain_one(file, err, lines) for err in errors[:MAX_PROBLEMS_SHOWN]]
    if len(errors) > MAX_PROBLEMS_SHOWN:
        messages.append(f"{file}: ... and {len(errors) - MAX_PROBLEMS_SHOWN} more — fix these first")
    head = f"{file}: {len(errors)} problem(s) in the policy" if len(errors) > 1 else ""
    return "\n".join(([head] if head else []) + messages)


_UNION_TAGS = ("str", "int", "float", "bool", "list[str]", "[key]")


def _explain_one(file: Path, err: ErrorDetails, lines: dict[tuple, int]) -> str:
    is_key = "[key]" in err["loc"]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and (
        p in _UNION_TAGS or p.startswith(("function-", "literal[")))))
    field = _dotted(loc) or "(top level)"
    line = _line_for(loc, lines)
    where = f"{file}:{line}" if line else str(file)
    shown = _clip_repr(err.get("input"))
    if err["type"] == "extra_forbidden":
        return f"{where}: {field}: unknown key — {_suggest(loc)}"
    if err["type"] == "literal_error":
        allowed = err.get("ctx", {}).get("expected", "")
        return f"{where}: {field}: {shown} is not allowed — use one of {allowed}"
    if err["type"] == "enum":
        return f"{where}: {field}: {shown} is not allowed — use one of {err['ctx']['expected']}"
    if is_key:
        return (f"{where}: {field}: {shown} is not an environment variable name — use letters, digits and _, "
                "not starting with a digit")
    got = "" if err["type"] == "missing" else f", got {shown}"
    hint = _HINTS.get(err["type"], "see docs/policy.md")
    message = err["msg"].removeprefix("Value error, ")
    return f"{where}: {field}: {message}{got} — {hint}"


def _clip_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _dotted(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_for(loc: tuple, lines: dict[tuple, int]) -> int | None:
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _suggest(loc: tuple) -> str:
    model: Any = Policy
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        inner = _model_of(field.annotation) if field else None
        if inner is None:
            break
        model = inner
    known = sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"known keys here: {', '.join(known)}" if known else "remove it"


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_of(arg)
        if found:
            return found
    return None
