"""Manifest format: round trip, range checks, and the self-digest envelope."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import replace
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import ManifestError
from storage.manifest import (
    CodecInfo,
    FragmentEntry,
    Manifest,
    SegmentEntry,
    canonical_bytes,
    decode_envelope,
    doc_id_from_manifest_key,
    encode_envelope,
    fragment_key,
    from_dict,
    manifest_key,
    to_dict,
    validate_doc_id,
)

H = "ab" * 32


def sample(size: int = 20, segment_size: int = 8, k: int = 2, m: int = 1) -> Manifest:
    segments = []
    for i in range(-(-size // segment_size)):
        seg_size = min(segment_size, size - i * segment_size)
        frags = tuple(
            FragmentEntry(index=j, node=f"n{j}", key=fragment_key("doc1", i, j), sha256=H, size=90)
            for j in range(k + m)
        )
        segments.append(SegmentEntry(index=i, size=seg_size, sha256=H, fragments=frags))
    return Manifest(
        doc_id="doc1",
        size=size,
        sha256=H,
        codec=CodecInfo(ec_type="isa_l_rs_cauchy", k=k, m=m),
        segment_size=segment_size,
        segments=tuple(segments),
        created="2026-01-02T03:04:05Z",
    )


def test_round_trip_and_fields() -> None:
    m = sample()
    d = to_dict(m)
    assert d["format"] == "notary-storage-manifest" and d["version"] == 1
    assert d["codec"] == {"library": "liberasurecode", "ec_type": "isa_l_rs_cauchy", "k": 2, "m": 1}
    assert d["encryption"] is None and d["revision"] == 1
    assert [s["size"] for s in d["segments"]] == [8, 8, 4]
    assert from_dict(json.loads(json.dumps(d))) == m
    assert decode_envelope(encode_envelope(m)) == m


def test_zero_byte_document_has_no_segments() -> None:
    m = sample(size=0)
    assert m.segments == ()
    assert decode_envelope(encode_envelope(m)) == m


# Field values of every type a caller could slip into the dataclasses, in or out of
# range: canonical_bytes' check of the typed fields must send each of them the right way.
_ints = st.integers(-(2**53 - 1), 2**53 - 1)
_strs = st.text() | st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F))
_edges = st.sampled_from([-0.0, 1e21, 0.1, 2**53, -(2**53), 2**64, True, "\ud800", "\u2028"])
_fields = (
    st.integers(-(2**60), 2**60)
    | st.booleans()
    | _strs
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.none()
    | _edges
)


@st.composite
def _manifests(draw: st.DrawFn) -> Manifest:
    odd = draw(st.sampled_from([0, 1, 10]))  # in 100: how often a field is of any kind

    def one(kind: st.SearchStrategy[Any]) -> Any:
        return draw(_fields if draw(st.integers(0, 99)) < odd else kind)

    segments = tuple(
        SegmentEntry(
            index=one(_ints),
            size=one(_ints),
            sha256=one(_strs),
            fragments=tuple(
                FragmentEntry(
                    index=one(_ints),
                    node=one(_strs),
                    key=one(_strs),
                    sha256=one(_strs),
                    size=one(_ints),
                )
                for _ in range(draw(st.integers(0, 3)))
            ),
        )
        for _ in range(draw(st.integers(0, 2)))
    )
    json_values = st.recursive(
        _fields, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_strs, inner)
    )
    return Manifest(
        doc_id=one(_strs),
        size=one(_ints),
        sha256=one(_strs),
        codec=CodecInfo(ec_type=one(_strs), k=one(_ints), m=one(_ints), library=one(_strs)),
        segment_size=one(_ints),
        segments=segments,
        created=one(_strs),
        revision=one(_ints),
        encryption=draw(st.none() | st.dictionaries(_strs, json_values, max_size=4)),
        format=one(_strs),
        version=one(_ints),
    )


@settings(max_examples=500, deadline=None)
@given(_manifests())
def test_canonical_bytes_are_rfc8785_of_the_manifest_object(manifest: Manifest) -> None:
    _same_as_rfc8785(manifest)


def _same_as_rfc8785(manifest: Manifest) -> None:
    try:
        expected: bytes | type[BaseException] = bytes(rfc8785.dumps(to_dict(manifest)))
    except Exception as e:
        expected = type(e)
    if isinstance(expected, bytes):
        assert canonical_bytes(manifest) == expected
    else:
        with pytest.raises(expected):
            canonical_bytes(manifest)


@pytest.mark.parametrize(
    "value", [-0.0, 1e21, 1.5, 2**53 - 1, 2**53, -(2**53), True, None, "\ud800", "é\u2028"]
)
def test_canonical_bytes_with_any_one_field_of_an_unexpected_value(value: Any) -> None:
    # Each field of each level in turn (hypothesis seldom changes just one).
    good = sample(size=9)
    segment = good.segments[0]
    fragment = segment.fragments[0]
    variants = [replace(good, **{name: value}) for name in _FIELDS]
    variants += [replace(good, codec=replace(good.codec, **{n: value})) for n in _CODEC_FIELDS]
    variants += [
        good.with_segments([replace(segment, **{n: value}), *good.segments[1:]], 1)
        for n in ("index", "size", "sha256")
    ]
    variants += [
        good.with_segments(
            [replace(segment, fragments=(replace(fragment, **{n: value}), *segment.fragments[1:]))],
            1,
        )
        for n in ("index", "node", "key", "sha256", "size")
    ]
    variants.append(replace(good, encryption={"b": [value], "a": value}))  # not in order
    for variant in variants:
        _same_as_rfc8785(variant)


_FIELDS = ("doc_id", "size", "sha256", "segment_size", "created", "revision", "format", "version")
_CODEC_FIELDS = ("ec_type", "k", "m", "library")


def test_the_manifest_object_lists_its_keys_in_canonical_order() -> None:
    # canonical_bytes writes to_dict's keys in the order given (no sort): keep them sorted.
    def check(value: Any) -> None:
        if isinstance(value, dict):
            assert list(value) == sorted(value)
            for item in value.values():
                check(item)
        elif isinstance(value, list):
            for item in value:
                check(item)

    check(to_dict(sample()))


def test_envelope_digest_is_sha256_of_canonical_manifest() -> None:
    m = sample()
    env = json.loads(encode_envelope(m))
    assert env["sha256"] == hashlib.sha256(rfc8785.dumps(env["manifest"])).hexdigest()


@pytest.mark.parametrize(
    "encryption", [None, {"alg": "AES-256-GCM", "note": 'é\u2028"\\', "n": 2**53 - 1}]
)
def test_envelope_bytes_are_the_rfc8785_encoding_of_the_envelope(
    encryption: dict[str, Any] | None,
) -> None:
    # Reference: the whole envelope through rfc8785 (the encoder wraps the manifest's own
    # canonical bytes instead of canonicalising it twice).
    m = Manifest(**{**sample().__dict__, "encryption": encryption})
    body = to_dict(m)
    digest = hashlib.sha256(rfc8785.dumps(body)).hexdigest()
    envelope = {"format": "notary-storage-manifest-envelope", "manifest": body, "sha256": digest}
    assert encode_envelope(m) == rfc8785.dumps(envelope)


def test_every_single_byte_flip_of_an_envelope_is_detected() -> None:
    m = sample(size=9)
    blob = encode_envelope(m)
    for pos in range(len(blob)):
        damaged = bytearray(blob)
        damaged[pos] ^= 0x01
        try:
            got = decode_envelope(bytes(damaged))
        except ManifestError:
            continue
        # A flip that leaves the canonical form equal (none expected) must decode to m.
        assert got == m
    with pytest.raises(ManifestError, match="truncated"):
        decode_envelope(blob[: len(blob) // 2])


def mutate(path: list[Any], value: Any) -> dict[str, Any]:
    d = to_dict(sample())
    target: Any = d
    for p in path[:-1]:
        target = target[p]
    if value is KeyError:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return d


@pytest.mark.parametrize(
    ("path", "value", "match"),
    [
        (["format"], "other", "format"),
        (["version"], 2, "version"),
        (["doc_id"], "../etc", "document id"),
        (["size"], -1, "out of range"),
        (["size"], 21, "segment 2"),
        (["size"], 25, "4 segments"),
        (["size"], True, "must be int"),
        (["sha256"], "AB" * 32, "hex"),
        (["codec", "k"], 0, "range"),
        (["codec", "m"], 3, "codec parameters"),
        (["codec", "ec_type"], "xor", "ec_type"),
        (["codec", "library"], "zfec", "library"),
        (["segment_size"], 0, "range"),
        (["created"], "yesterday", "RFC 3339"),
        (["encryption"], "key", "encryption"),
        (["revision"], 0, "range"),
        (["segments", 0, "size"], 7, "segment 0"),
        (["segments", 1, "index"], 0, "segment 1"),
        (["segments", 0, "fragments", 1, "index"], 2, "indexed"),
        (["segments", 0, "fragments", 1, "node"], "n0", "distinct"),
        (["segments", 0, "fragments", 1, "key"], "../x", "key"),
        (["segments", 0, "fragments", 1, "size"], 0, "range"),
        (["segments", 0, "fragments"], KeyError, "fragments"),
    ],
)
def test_invalid_manifests_are_rejected(path: list[Any], value: Any, match: str) -> None:
    with pytest.raises(ManifestError, match=match):
        from_dict(mutate(path, value))


def test_a_forged_manifest_with_recomputed_field_but_old_digest_is_rejected() -> None:
    env = json.loads(encode_envelope(sample()))
    forged = copy.deepcopy(env)
    forged["manifest"]["sha256"] = "cd" * 32
    with pytest.raises(ManifestError, match="digest mismatch"):
        decode_envelope(json.dumps(forged).encode())


def test_keys_and_ids() -> None:
    assert fragment_key("abc", 3, 5) == "frag/abc/00000003.05"
    assert manifest_key("abc") == "manifest/abc.json"
    assert doc_id_from_manifest_key("manifest/abc.json") == "abc"
    assert doc_id_from_manifest_key("manifest/ABC.json") is None
    assert doc_id_from_manifest_key("frag/abc/1") is None
    for bad in ["", "-a", "A", "a/b", "a" * 65, "a.b"]:
        with pytest.raises(ManifestError):
            validate_doc_id(bad)
    assert validate_doc_id("a" * 64) == "a" * 64


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(0, 10_000),
    segment_size=st.integers(1, 4096),
    km=st.sampled_from([(1, 1), (4, 2), (8, 8), (10, 4)]),
    revision=st.integers(1, 2**53 - 1),
)
def test_any_valid_manifest_round_trips_through_the_envelope(
    size: int, segment_size: int, km: tuple[int, int], revision: int
) -> None:
    k, m = km
    if -(-size // segment_size) > 200:
        segment_size = -(-size // 200)
    man = sample(size=size, segment_size=segment_size, k=k, m=m)
    man = man.with_segments(man.segments, revision)
    blob = encode_envelope(man)
    assert decode_envelope(blob) == man
    assert json.loads(blob)["manifest"] == to_dict(man)
