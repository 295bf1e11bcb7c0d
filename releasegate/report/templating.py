"""The Jinja environment of the report's templates (releasegate/templates/): HTML autoescaped, Markdown
escaped."""

from __future__ import annotations

import functools
import re
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, pass_context

from releasegate.report.formatting import fmt_number


@functools.lru_cache(maxsize=1)
def template_env() -> Environment:
    """HTML templates autoescape; Markdown templates escape every value for Markdown (``markdown_finalize``).
    One environment per process: its templates are compiled once, not for every report."""
    env = Environment(loader=PackageLoader("releasegate", "templates"), undefined=StrictUndefined,
                      autoescape=lambda name: name is not None and name.endswith((".html.j2", ".html")),
                      finalize=markdown_finalize, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters.update(md=md_cell, num=fmt_number, short=lambda fp: (fp or "")[:12])
    return env


class MarkdownText(str):
    """Text already escaped for Markdown (the ``md`` filter's output): not escaped again."""


@pass_context
def markdown_finalize(context: Any, value: Any) -> Any:
    """Every ``{{ value }}`` of a Markdown template (``*.md.j2``) is escaped, filtered through ``md`` or not."""
    name = context.name or ""
    if not name.endswith((".md.j2", ".md")) or isinstance(value, MarkdownText):
        return value
    return md_cell(value)


def md_cell(value: Any) -> MarkdownText:
    """Text that stays text in Markdown, also inside a table cell: one line, and no markup of its own.

    Line breaks collapse; backslash escapes keep characters that would start markup literal: links and
    images (``[`` ``]``), raw HTML and autolinks (``<`` ``>``), entities (``&``), code (`````), emphasis
    (``*``, ``_`` at a word's edge), strikethrough (``~``), table cells (``|``); ``://`` and ``www.`` so a
    renderer that links bare URLs leaves them as text.
    """
    text = " ".join(str(value if value is not None else "").split())
    text = _MD_SPECIAL.sub(lambda m: "\\" + m.group(), text)
    text = _MD_UNDERSCORES.sub(_escape_underscores, text)
    text = _MD_SCHEME.sub("\\\\:", text)
    return MarkdownText(_MD_WWW.sub(lambda m: m.group()[:-1] + "\\.", text))


_MD_SPECIAL = re.compile(r"[\\`*\[\]<>&|~]")
_MD_UNDERSCORES = re.compile(r"_+")
_MD_SCHEME = re.compile(r"(?<=\w):(?=//)")
_MD_WWW = re.compile(r"(?<![\w.])(?i:www)\.")


def _escape_underscores(match: re.Match) -> str:
    text, start, end = match.string, match.start(), match.end()
    inside_a_word = 0 < start and end < len(text) and text[start - 1].isalnum() and text[end].isalnum()
    return match.group() if inside_a_word else "\\_" * len(match.group())
