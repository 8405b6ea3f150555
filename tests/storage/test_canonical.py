"""storage.canonical gives rfc8785's bytes (or its refusal) for every JSON value."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.canonical import canonical_json

_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F))
)
_keys = st.text() | st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E))
_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(_keys, inner, max_size=5),
    max_leaves=30,
)


def _reference(value: Any) -> bytes | type[BaseException]:
    try:
        return bytes(rfc8785.dumps(value))
    except Exception as e:
        return type(e)


@settings(max_examples=600, deadline=None)
@given(_values)
def test_same_bytes_or_same_refusal_as_rfc8785(value: Any) -> None:
    expected = _reference(value)
    if isinstance(expected, bytes):
        assert canonical_json(value) == expected
    else:
        with pytest.raises(expected):
            canonical_json(value)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, None, 'x\u2028y\x7f\x00\x1f\n"\\'], "\u00e9": "\U0001f600"},
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code point order
        {"n": 2**53 - 1, "m": -(2**53 - 1)},
        {"f": 1.0, "g": 1e21, "h": -0.0},
    ],
)
def test_edge_values(value: Any) -> None:
    assert canonical_json(value) == bytes(rfc8785.dumps(value))


def test_what_jcs_cannot_encode_is_refused() -> None:
    for bad in ({"n": 2**53}, {"s": "\ud800"}, {"f": float("nan")}):
        with pytest.raises(Exception) as info:
            canonical_json(bad)
        assert isinstance(info.value, type(_reference_error(bad)))


def _reference_error(value: Any) -> BaseException:
    try:
        rfc8785.dumps(value)
    except Exception as e:
        return e
    raise AssertionError(f"rfc8785 encoded {value!r}")
