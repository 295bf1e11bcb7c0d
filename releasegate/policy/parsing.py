"""gate.yaml's text to plain data and the line of every field; hostile YAML is refused with a message."""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

from releasegate.domain.errors import PolicyError
from releasegate.policy.explain import _clip_repr
from releasegate.policy.spec import MAX_NESTING, MAX_NODES, MAX_TIMEOUT_S


class _Refused(Exception):
    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else None


_JSON_TAGS = frozenset(f"tag:yaml.org,2002:{t}" for t in ("str", "int", "float", "bool", "null", "seq", "map"))
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")


class PolicyLoader(yaml.SafeLoader):
    """A SafeLoader for policies: JSON's types only, no anchors or aliases, no duplicate keys, bounded nesting.

    Aliases are what make a 1 KiB file expand to gigabytes (and anchors their only use), so both are
    refused where they appear. Dates stay text (``version: 2026-01-01``).
    """

    yaml_implicit_resolvers = {first: [(tag, rx) for tag, rx in resolvers if tag != _TIMESTAMP]
                               for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _Refused(event.start_mark, f"alias *{event.anchor}: anchors and aliases are not allowed in a "
                                             "policy — write the value out where it is used")
        if getattr(event, "anchor", None):
            raise _Refused(event.start_mark, f"anchor &{event.anchor}: anchors and aliases are not allowed in a "
                                             "policy — remove it and write values out where they are used")
        self._depth += 1
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise _Refused(event.start_mark, f"more than {MAX_NODES} values — a policy needs a few hundred; check "
                                             "that this is the right file")
        if self._depth > MAX_NESTING:
            raise _Refused(event.start_mark, f"nested more than {MAX_NESTING} levels deep — a policy needs a "
                                             "handful; check the indentation and brackets")
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is None:  # PyYAML returns a node or raises; its type hints allow None
            raise _Refused(event.start_mark, "no value where one was expected — check the indentation")
        if node.tag not in _JSON_TAGS:
            raise _Refused(node.start_mark, f"tag {node.tag} is not allowed in a policy (text, numbers, true/false, "
                                            "null, lists and mappings only) — remove the tag")
        if isinstance(node, yaml.ScalarNode) and _CONTROL.search(node.value):
            raise _Refused(node.start_mark, "control character in a value — remove it (tabs and line breaks are "
                                            "the only ones allowed)")
        return node

    def construct_yaml_int(self, node: Any) -> int:
        try:
            return super().construct_yaml_int(node)
        except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
            raise _Refused(node.start_mark, f"the number {node.value[:20]}... is too long — write a number of "
                                            "a few digits") from None

    def construct_yaml_float(self, node: Any) -> float:
        value = super().construct_yaml_float(node)
        if not math.isfinite(value):
            raise _Refused(node.start_mark, f"{node.value} is not a finite number — write a number (durations "
                                            f"have a maximum, e.g. {MAX_TIMEOUT_S:g} s for a timeout)")
        return value

    def construct_mapping(self, node: Any, deep: bool = False) -> dict[Any, Any]:
        seen: dict[str, int] = {}
        for key_node, _value in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, str):
                if not isinstance(key_node, yaml.ScalarNode):
                    raise _Refused(key_node.start_mark, f"a {type(key).__name__} as a key is not allowed — keys "
                                                        "are text")
                raise _Refused(key_node.start_mark, f"key {_clip_repr(key_node.value)} is read as "
                                                    f"{type(key).__name__}, not text — quote it")
            if key in seen:
                raise _Refused(key_node.start_mark, f"duplicate key {key!r} (first on line {seen[key]}) — keep one; "
                                                    "YAML would silently use the last")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


PolicyLoader.add_constructor("tag:yaml.org,2002:int", PolicyLoader.construct_yaml_int)
PolicyLoader.add_constructor("tag:yaml.org,2002:float", PolicyLoader.construct_yaml_float)


def _parse_yaml(file: Path, text: str) -> tuple[Any, dict[tuple, int]]:
    loader = None
    try:
        loader = PolicyLoader(text)
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except _Refused as exc:
        where = f":{exc.line}" if exc.line else ""
        raise PolicyError(f"{file}{where}: {exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else _reader_line(text, exc)
        where = f":{line}" if line else ""
        raise PolicyError(f"{file}{where}: not valid YAML ({getattr(exc, 'problem', None) or exc}) — "
                          "check indentation and quoting near that line") from None
    finally:
        if loader is not None:
            loader.dispose()
    if not isinstance(data, dict):
        raise PolicyError(f"{file}: expected a mapping at the top (service:, suites:, ...), "
                          f"got {type(data).__name__} — see docs/policy.md for an example")
    lines: dict[tuple, int] = {}
    _index_lines(node, (), lines)
    return data, lines


def _reader_line(text: str, exc: yaml.YAMLError) -> int | None:
    position = getattr(exc, "position", None)
    return text.count("\n", 0, position) + 1 if isinstance(position, int) else None


def _index_lines(node: Any, path: tuple, out: dict[tuple, int]) -> None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            out[path + (key.value,)] = key.start_mark.line + 1
            _index_lines(value, path + (key.value,), out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            out[path + (i,)] = item.start_mark.line + 1
            _index_lines(item, path + (i,), out)
