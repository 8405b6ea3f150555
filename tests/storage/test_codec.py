"""Erasure codec: round trips over every (k, m) with random lost and corrupted fragments."""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.codec import (
    FRAGMENT_HEADER_SIZE,
    SegmentCodec,
    parse_fragment_header,
    validate_parameters,
)
from storage.errors import ConfigError

PAIRS = [(k, m) for k in range(1, 16) for m in range(1, k + 1) if k + m <= 16]
_codecs: dict[tuple[int, int, str], SegmentCodec] = {}


def codec(k: int, m: int, ec_type: str) -> SegmentCodec:
    if (k, m, ec_type) not in _codecs:
        _codecs[(k, m, ec_type)] = SegmentCodec(k, m, ec_type)
    return _codecs[(k, m, ec_type)]


def naive_reference(fragments: list[bytes], k: int) -> bytes:
    """What the fragments must decode to, read straight from liberasurecode's layout.

    The codes are systematic: data fragments 0..k-1 carry the segment in order after an
    80-byte header whose first fields are idx u32, size u32, backend-metadata size u32 and
    the original length u64 (little-endian).
    """
    out = b""
    orig = None
    for i in range(k):
        idx, size, _meta, orig_size = struct.unpack_from("<IIIQ", fragments[i], 0)
        assert idx == i
        orig = orig_size
        out += fragments[i][80 : 80 + size]
    assert orig is not None
    return out[:orig]


def test_pair_list_covers_every_supported_parameter_set() -> None:
    assert len(PAIRS) == 64
    assert (8, 8) in PAIRS and (15, 1) in PAIRS and (1, 1) in PAIRS


@pytest.mark.parametrize(("k", "m"), [(0, 1), (2, 0), (2, 3), (9, 8), (16, 1), (-1, -1)])
def test_invalid_parameters_are_config_errors(k: int, m: int) -> None:
    with pytest.raises(ConfigError):
        validate_parameters(k, m)
    with pytest.raises(ConfigError):
        SegmentCodec(k, m)


def test_unknown_ec_type_is_config_error() -> None:
    with pytest.raises(ConfigError):
        SegmentCodec(4, 2, "flat_xor_hd_3")


def test_default_backend_is_isa_l_cauchy_when_it_loads() -> None:
    assert SegmentCodec(4, 2).ec_type == "isa_l_rs_cauchy"


def test_fallback_when_isa_l_cannot_load(monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.codec as mod

    real = mod._make_driver

    def no_isal(k: int, m: int, ec_type: str) -> object:
        if ec_type.startswith("isa_l"):
            raise OSError("libisal not found")
        return real(k, m, ec_type)

    monkeypatch.setattr(mod, "_make_driver", no_isal)
    c = SegmentCodec(4, 2)
    assert c.ec_type == "liberasurecode_rs_vand"
    data = bytes(range(256)) * 40
    assert c.decode(dict(enumerate(c.encode(data)))) == data
    with pytest.raises(ConfigError):
        SegmentCodec(4, 2, "isa_l_rs_cauchy")


def _round_trip(data: bytes, pair: tuple[int, int], ec_type: str, rnd: st.DataObject) -> None:
    k, m = pair
    c = codec(k, m, ec_type)
    fragments = c.encode(data)
    assert len(fragments) == k + m
    for i, f in enumerate(fragments):
        h = parse_fragment_header(f)
        assert h.index == i and h.orig_data_size == len(data)
        assert len(f) == FRAGMENT_HEADER_SIZE + h.payload_size
    assert naive_reference(fragments, k) == data
    digests = [hashlib.sha256(f).hexdigest() for f in fragments]

    bad = rnd.draw(st.sets(st.integers(0, k + m - 1), max_size=m), label="bad")
    corrupt = rnd.draw(st.sets(st.sampled_from(sorted(bad)) if bad else st.nothing()), label="c")
    stored: dict[int, bytes] = {}
    for i, f in enumerate(fragments):
        if i in corrupt:
            pos = rnd.draw(st.integers(0, len(f) - 1), label="pos")
            flipped = bytearray(f)
            flipped[pos] ^= 1 << rnd.draw(st.integers(0, 7), label="bit")
            stored[i] = bytes(flipped)
        elif i not in bad:
            stored[i] = f
    # The store's rule: a fragment whose digest differs is an erasure.
    good = {i: f for i, f in stored.items() if hashlib.sha256(f).hexdigest() == digests[i]}
    assert set(good) == set(range(k + m)) - bad
    assert c.decode(good) == data
    subset = rnd.draw(st.permutations(sorted(good)), label="order")[:k]
    assert c.decode({i: good[i] for i in subset}) == data
    missing = sorted(bad)
    if missing:
        rebuilt = c.reconstruct({i: good[i] for i in subset}, missing)
        assert rebuilt == [fragments[i] for i in missing]


@settings(max_examples=400, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=5000),
    pair=st.sampled_from(PAIRS),
    rnd=st.data(),
)
def test_round_trip_cauchy_any_pattern_of_up_to_m_erasures(
    data: bytes, pair: tuple[int, int], rnd: st.DataObject
) -> None:
    _round_trip(data, pair, "isa_l_rs_cauchy", rnd)


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=5000),
    pair=st.sampled_from(PAIRS),
    rnd=st.data(),
)
def test_round_trip_fallback_backend(
    data: bytes, pair: tuple[int, int], rnd: st.DataObject
) -> None:
    _round_trip(data, pair, "liberasurecode_rs_vand", rnd)


@pytest.mark.parametrize("pair", PAIRS)
def test_every_pair_survives_losing_the_first_m_and_the_last_m(pair: tuple[int, int]) -> None:
    k, m = pair
    c = codec(k, m, "isa_l_rs_cauchy")
    data = bytes((i * 7 + 3) % 251 for i in range(3000))
    fragments = dict(enumerate(c.encode(data)))
    assert c.decode({i: f for i, f in fragments.items() if i >= m}) == data
    assert c.decode({i: f for i, f in fragments.items() if i < k}) == data


def test_fewer_than_k_fragments_refuse_to_decode() -> None:
    c = codec(4, 2, "isa_l_rs_cauchy")
    fragments = c.encode(b"x" * 1000)
    with pytest.raises(ValueError, match="need 4"):
        c.decode(dict(enumerate(fragments[:3])))


def test_header_parser_rejects_truncation_and_bad_magic() -> None:
    f = codec(4, 2, "isa_l_rs_cauchy").encode(b"y" * 999)[0]
    with pytest.raises(ValueError, match="truncated"):
        parse_fragment_header(f[:-1])
    with pytest.raises(ValueError, match="shorter"):
        parse_fragment_header(f[:10])
    broken = bytearray(f)
    broken[60] ^= 0xFF
    with pytest.raises(ValueError, match="magic"):
        parse_fragment_header(bytes(broken))
    broken = bytearray(f)
    broken[12] ^= 0x01  # orig_data_size: caught by liberasurecode's header CRC-32
    with pytest.raises(ValueError, match="checksum"):
        parse_fragment_header(bytes(broken))
