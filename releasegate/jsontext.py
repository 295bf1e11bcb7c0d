"""JSON text through C encoders built once.

``json.dumps`` and ``JSONEncoder.encode`` build the C encoder anew on every call, which costs more than encoding a
small value; the gate encodes tens of thousands of small values (a finding's data, a record per line of an
evidence file), so it builds each encoder it needs once. No circular-reference check: the values are the gate's
own, never cyclic (a cycle ends in RecursionError rather than looping).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from json.encoder import c_make_encoder, encode_basestring, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any


def _refuse(value: Any) -> Any:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


@cache
def encoder(sort_keys: bool = False, ensure_ascii: bool = False, item_separator: str = ",",
            key_separator: str = ":", default: Callable[[Any], Any] | None = str) -> Callable[[Any], str]:
    """``lambda value: json.dumps(value, sort_keys=..., ensure_ascii=..., separators=(item, key), default=...)``
    with the encoder built once (``default=None``: an unknown type raises TypeError, as json.dumps does)."""
    fallback = default or _refuse
    quote = encode_basestring_ascii if ensure_ascii else encode_basestring
    if c_make_encoder is None:  # pragma: no cover - CPython always has the C encoder
        plain = json.JSONEncoder(sort_keys=sort_keys, ensure_ascii=ensure_ascii,
                                 separators=(item_separator, key_separator), default=fallback)
        return plain.encode
    make = c_make_encoder(None, fallback, quote, None, key_separator, item_separator, sort_keys, False, True)
    return lambda value: "".join(make(value, 0))
