"""Canonical JSON (RFC 8785, JCS), fast for the values our formats hold.

For objects whose keys are ASCII and whose values are strings, integers of at most 53
bits, booleans, null, arrays and such objects, ``json.dumps`` with sorted keys, no
whitespace and no ASCII escaping writes exactly the JCS bytes: JCS sorts keys by UTF-16
code units (the same order as Python's for ASCII), escapes only ``"``, ``\\`` and the
control characters (``\\b \\t \\n \\f \\r``, else ``\\u00xx`` in lower case, as ``json``
does) and writes integers in decimal. It is five times faster than the pure-Python
``rfc8785`` encoder, which matters for the manifests written with every document.
Anything else (a float, a non-ASCII key, a larger integer, a lone surrogate) goes to
``rfc8785``, which also raises for what JCS cannot encode.
"""

from __future__ import annotations

import json
from typing import Any

import rfc8785

_MAX_INT = 2**53 - 1  # JCS's integer domain (IEEE 754 doubles hold these exactly)


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is bool or value is None:
        return True
    if kind is int:
        return bool(-_MAX_INT <= value <= _MAX_INT)
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(v) for v in value)
    return False


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 canonical JSON bytes of ``value`` (rfc8785's errors if it has none)."""
    if _plain(value):
        try:
            text = json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
            return text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: rfc8785 says what is wrong
            pass
    return bytes(rfc8785.dumps(value))
