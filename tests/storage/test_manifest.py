"""Manifest format: round trip, range checks, and the self-digest envelope."""

from __future__ import annotations

import copy
import hashlib
import json
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
