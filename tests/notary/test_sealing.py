"""The sealing format (notary/sealing.py) against a naive reference of docs/sealing.md:
round trips over sizes and chunkings, range reads, and every tampering caught at the
right record for the right reason."""

from __future__ import annotations

import asyncio
import base64
import os
import random
import struct
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_wrap
from hypothesis import given, settings
from hypothesis import strategies as st

from notary import sealing
from notary.sealing import (
    Keyring,
    MasterKey,
    RecordOpener,
    RecordSealer,
    SealingError,
    SealParams,
    parse_keyring,
    record_span,
    seal_bytes,
    seal_stream,
    unseal_bytes,
    unseal_range,
)

MASTER = MasterKey.from_bytes(bytes(range(32)))
RING = Keyring((MASTER,))
DATA_KEY = bytes(range(100, 132))
PREFIX = bytes.fromhex("a1a2a3a4a5a6a7")
DOC = "doc-1"


def naive_seal(plaintext: bytes, record_size: int, doc_id: str = DOC) -> bytes:
    """docs/sealing.md, written out as plainly as possible."""
    records = [plaintext[i : i + record_size] for i in range(0, len(plaintext), record_size)]
    if not records:
        records = [b""]
    aead = AESGCM(DATA_KEY)
    out = b""
    for i, record in enumerate(records):
        final = 1 if i == len(records) - 1 else 0
        nonce = PREFIX + struct.pack(">I", i) + bytes([final])
        out += aead.encrypt(nonce, record, b"notary-seal/v1\x00" + doc_id.encode())
    return out


def sealer(record_size: int, doc_id: str = DOC) -> RecordSealer:
    return RecordSealer(
        doc_id, MASTER, data_key=DATA_KEY, nonce_prefix=PREFIX, record_size=record_size
    )


def seal(plaintext: bytes, record_size: int = 32) -> tuple[bytes, SealParams]:
    s = sealer(record_size)
    sealed = seal_bytes(s, plaintext)
    return sealed, s.params


async def chunks_of(data: bytes, cuts: list[int]) -> AsyncIterator[bytes]:
    last = 0
    for cut in sorted(c % (len(data) + 1) for c in cuts):
        yield data[last:cut]
        last = max(last, cut)
    yield data[last:]


def reader(sealed: bytes, asked: list[tuple[int, int]], piece: int = 7) -> Callable[..., Any]:
    async def read(start: int, end: int) -> AsyncIterator[bytes]:
        asked.append((start, end))
        for i in range(start, end, piece):
            yield sealed[i : min(i + piece, end)]

    return read


OFFLOADED: list[str] = []


async def to_thread(fn: Callable[..., Any], /, *args: Any) -> Any:
    OFFLOADED.append(fn.__name__)
    return await asyncio.to_thread(fn, *args)


# ----------------------------------------------------------------- round trips


@settings(max_examples=150, deadline=None)
@given(
    size=st.one_of(st.integers(0, 200), st.sampled_from([0, 31, 32, 33, 64, 96, 97])),
    record_size=st.sampled_from([16, 17, 32, 64]),
    cuts=st.lists(st.integers(0, 400), max_size=6),
)
async def test_stream_round_trip_matches_reference(
    size: int, record_size: int, cuts: list[int]
) -> None:
    plaintext = random.Random(size).randbytes(size)
    s = sealer(record_size)
    sealed = b"".join([c async for c in seal_stream(chunks_of(plaintext, cuts), s)])
    assert sealed == naive_seal(plaintext, record_size)
    params = s.params
    assert params.plaintext_size == size
    assert len(sealed) == params.sealed_size == sealing.sealed_size(size, record_size)
    assert unseal_bytes(RecordOpener(DOC, RING, params), sealed) == plaintext


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 300),
    record_size=st.sampled_from([16, 32, 50]),
    data=st.data(),
)
async def test_range_reads_touch_only_covering_records(
    size: int, record_size: int, data: st.DataObject
) -> None:
    plaintext = random.Random(size).randbytes(size)
    sealed, params = seal(plaintext, record_size)
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start + 1, size))
    asked: list[tuple[int, int]] = []
    opener = RecordOpener(DOC, RING, params)
    got = b"".join([c async for c in unseal_range(reader(sealed, asked), opener, start, end)])
    assert got == plaintext[start:end]
    stride = record_size + 16
    ((lo, hi),) = asked
    assert lo == (start // record_size) * stride
    assert hi == min(((end - 1) // record_size + 1) * stride, len(sealed))


async def test_empty_range_and_empty_document() -> None:
    sealed, params = seal(b"")
    assert len(sealed) == 16 and params.records == 1
    opener = RecordOpener(DOC, RING, params)
    assert unseal_bytes(opener, sealed) == b""
    asked: list[tuple[int, int]] = []
    assert [c async for c in unseal_range(reader(sealed, asked), opener, 0, 0)] == []
    assert asked == []


async def test_large_chunks_are_offloaded_and_identical() -> None:
    plaintext = os.urandom(3 * 1024 * 1024 + 5)
    inline, threaded = sealer(64 * 1024), sealer(64 * 1024)

    async def one(data: bytes) -> AsyncIterator[bytes]:
        yield data

    a = b"".join([c async for c in seal_stream(one(plaintext), inline, threshold=1 << 40)])
    b = b"".join(
        [c async for c in seal_stream(one(plaintext), threaded, offload=to_thread, threshold=0)]
    )
    assert a == b == naive_seal(plaintext, 64 * 1024)
    assert "update" in OFFLOADED
    opener = RecordOpener(DOC, RING, threaded.params)
    out = b"".join(
        [
            c
            async for c in unseal_range(
                reader(b, [], piece=1 << 20),
                opener,
                5,
                len(plaintext),
                offload=to_thread,
                threshold=0,
            )
        ]
    )
    assert out == plaintext[5:]
    assert "open_many" in OFFLOADED


def test_nonce_and_associated_data_layout() -> None:
    assert sealing.record_nonce(PREFIX, 1, False) == PREFIX + b"\x00\x00\x00\x01\x00"
    assert sealing.record_nonce(PREFIX, 2**32 - 1, True) == PREFIX + b"\xff\xff\xff\xff\x01"
    assert sealing.associated_data("ab-1") == b"notary-seal/v1\x00ab-1"


def test_wrapped_key_is_rfc3394_of_the_data_key() -> None:
    _, params = seal(b"x")
    assert params.wrapped_key == aes_key_wrap(MASTER.key, DATA_KEY)
    assert DATA_KEY.hex() not in str(params.to_json())


def test_fresh_sealers_use_fresh_keys_and_prefixes() -> None:
    a = RecordSealer.create(DOC, RING, os.urandom)
    b = RecordSealer.create(DOC, RING, os.urandom)
    pa, pb = seal_bytes(a, b"same"), seal_bytes(b, b"same")
    assert pa != pb
    assert a.params.wrapped_key != b.params.wrapped_key
    assert a.params.nonce_prefix != b.params.nonce_prefix


# -------------------------------------------------------------------- tampering


def fails(reason: str, record: int | None, fn: Callable[[], object]) -> SealingError:
    with pytest.raises(SealingError) as info:
        fn()
    assert info.value.reason == reason, info.value
    assert info.value.record == record, info.value
    return info.value


PLAIN = bytes(range(100))  # 4 records of 32 bytes: 32, 32, 32, 4
SEALED, PARAMS = seal(PLAIN)
STRIDE = 48


def opener(params: SealParams = PARAMS, doc_id: str = DOC, ring: Keyring = RING) -> RecordOpener:
    return RecordOpener(doc_id, ring, params)


@pytest.mark.parametrize("position", range(0, len(SEALED), 5))
def test_every_flipped_byte_fails_at_its_record(position: int) -> None:
    tampered = bytearray(SEALED)
    tampered[position] ^= 0x01
    fails("record_auth", position // STRIDE, lambda: unseal_bytes(opener(), bytes(tampered)))


def test_swapped_records_fail() -> None:
    r = [SEALED[i : i + STRIDE] for i in range(0, len(SEALED), STRIDE)]
    swapped = r[1] + r[0] + r[2] + r[3]
    fails("record_auth", 0, lambda: unseal_bytes(opener(), swapped))


def test_duplicated_record_fails() -> None:
    r = [SEALED[i : i + STRIDE] for i in range(0, len(SEALED), STRIDE)]
    fails("record_auth", 1, lambda: unseal_bytes(opener(), r[0] + r[0] + r[2] + r[3]))


def test_truncated_stream_fails() -> None:
    cut = SEALED[: 3 * STRIDE]
    fails("truncated", 3, lambda: unseal_bytes(opener(), cut))


def test_truncated_stream_with_rewritten_size_fails_at_the_new_last_record() -> None:
    cut = SEALED[: 3 * STRIDE]
    params = replace(PARAMS, plaintext_size=96)
    fails("record_auth", 2, lambda: unseal_bytes(opener(params), cut))


def test_extended_stream_fails() -> None:
    fails("trailing_data", 3, lambda: unseal_bytes(opener(), SEALED + SEALED[-20:]))


def test_extended_stream_with_rewritten_size_fails() -> None:
    # 3 full records; a copy of record 1 appended and the size rewritten to match:
    # the old final record now sits in a non-final position.
    sealed, params = seal(PLAIN[:96])
    extended = sealed + sealed[STRIDE : 2 * STRIDE]
    longer = replace(params, plaintext_size=128)
    fails("record_auth", 2, lambda: unseal_bytes(opener(longer), extended))


async def test_truncated_range_read_fails() -> None:
    async def short(start: int, end: int) -> AsyncIterator[bytes]:
        yield SEALED[start : end - 1]

    with pytest.raises(SealingError) as info:
        [c async for c in unseal_range(short, opener(), 0, 100)]
    assert info.value.reason == "truncated" and info.value.record == 3


def test_other_document_id_fails() -> None:
    fails("record_auth", 0, lambda: unseal_bytes(opener(doc_id="doc-2"), SEALED))


def test_changed_nonce_prefix_fails() -> None:
    params = replace(PARAMS, nonce_prefix=bytes(7))
    fails("record_auth", 0, lambda: unseal_bytes(opener(params), SEALED))


def test_unknown_key_id_fails() -> None:
    params = replace(PARAMS, key_id="retired-2019")
    err = fails("unknown_key", None, lambda: opener(params))
    assert "retired-2019" in str(err)


def test_wrong_key_under_the_same_id_fails() -> None:
    impostor = Keyring((MasterKey(MASTER.key_id, bytes(32)),))
    err = fails("unwrap_failed", None, lambda: opener(ring=impostor))
    assert MASTER.key.hex() not in str(err) and bytes(32).hex() not in str(err)


def test_damaged_wrapped_key_fails() -> None:
    wrapped = bytearray(PARAMS.wrapped_key)
    wrapped[5] ^= 0x80
    fails("unwrap_failed", None, lambda: opener(replace(PARAMS, wrapped_key=bytes(wrapped))))


# ------------------------------------------------------------- keys and params


def test_rotation_newest_seals_every_key_unseals() -> None:
    old, new = MasterKey.from_bytes(os.urandom(32)), MasterKey.from_bytes(os.urandom(32))
    before = RecordSealer.create(DOC, Keyring((old,)), os.urandom)
    sealed_before = seal_bytes(before, b"draft v1")
    rotated = Keyring((old, new))
    after = RecordSealer.create(DOC, rotated, os.urandom)
    sealed_after = seal_bytes(after, b"draft v2")
    assert after.params.key_id == new.key_id != before.params.key_id
    assert unseal_bytes(RecordOpener(DOC, rotated, before.params), sealed_before) == b"draft v1"
    assert unseal_bytes(RecordOpener(DOC, rotated, after.params), sealed_after) == b"draft v2"


def test_parse_keyring_formats() -> None:
    a, b, c = os.urandom(32), os.urandom(32), os.urandom(32)
    text = (
        "# master keys, oldest first\n\n"
        f"{base64.b64encode(a).decode()}\n"
        f"hsm-2026:{b.hex()}\n"
        f"  {base64.b64encode(c).decode()}  \n"
    )
    ring = parse_keyring(text, "keys.txt")
    assert [k.key for k in ring.keys] == [a, b, c]
    assert ring.keys[0].key_id == sealing.derive_key_id(a) and len(ring.keys[0].key_id) == 16
    assert ring.keys[1].key_id == "hsm-2026"
    assert ring.newest.key == c
    comma = parse_keyring(f"{a.hex()},{b.hex()}", "env")
    assert [k.key for k in comma.keys] == [a, b]


@pytest.mark.parametrize(
    "text",
    ["", "# nothing\n", "bm90IGEga2V5", "x" * 64, "bad id!:" + "00" * 32, "00" * 31],
)
def test_parse_keyring_rejects(text: str) -> None:
    with pytest.raises(SealingError) as info:
        parse_keyring(text, "keys.txt")
    assert info.value.reason == "bad_key"
    assert "keys.txt" in str(info.value)
    assert not text or text not in str(info.value)


def test_key_material_never_in_errors_or_repr() -> None:
    secret = os.urandom(32)
    line = base64.b64encode(secret).decode()
    with pytest.raises(SealingError) as info:
        parse_keyring(f"{line}\n{line}\n", "keys.txt")  # same derived id twice
    assert line not in str(info.value) and secret.hex() not in str(info.value)
    assert line not in repr(MasterKey.from_bytes(secret)) and secret.hex() not in repr(
        MasterKey.from_bytes(secret)
    )


def test_params_json_round_trip_and_range_checks() -> None:
    obj = PARAMS.to_json()
    assert obj["scheme"] == "notary-seal" and obj["version"] == 1
    assert SealParams.from_json(obj) == PARAMS
    bad_values: list[dict[str, Any]] = [
        {"version": 2},
        {"aead": "AES-128-GCM"},
        {"key_wrap": "RSA"},
        {"record_size": 8},
        {"record_size": True},
        {"plaintext_size": -1},
        {"plaintext_size": 2**53},
        {"nonce_prefix": "00"},
        {"nonce_prefix": "A1A2A3A4A5A6A7"},
        {"wrapped_key": "zz" * 40},
        {"key_id": ""},
        {"key_id": "a/b"},
    ]
    for change in bad_values:
        with pytest.raises(SealingError) as info:
            SealParams.from_json({**obj, **change})
        assert info.value.reason == "bad_params", change
    huge = {**obj, "record_size": 16, "plaintext_size": 16 * 2**32 + 1}
    with pytest.raises(SealingError):
        SealParams.from_json(huge)


def test_record_span() -> None:
    assert record_span(PARAMS, 0, 100) == (0, 3, 0, len(SEALED))
    assert record_span(PARAMS, 32, 64) == (1, 1, 48, 96)
    assert record_span(PARAMS, 31, 33) == (0, 1, 0, 96)
    assert record_span(PARAMS, 99, 100) == (3, 3, 144, 164)
    with pytest.raises(ValueError):
        record_span(PARAMS, 5, 5)
