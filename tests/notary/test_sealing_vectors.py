"""The committed sealing vectors (tests/vectors/sealing): valid ones open to their
plaintext, both through notary.sealing and through a naive reading of docs/sealing.md;
tampered ones fail with the reason and at the record they name."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap

from notary.sealing import (
    Keyring,
    MasterKey,
    RecordOpener,
    SealingError,
    SealParams,
    unseal_bytes,
)
from tests.vectors import gen_sealing_vectors

DIR = Path(__file__).parents[1] / "vectors" / "sealing"
VALID = json.loads((DIR / "valid.json").read_text("utf-8"))
TAMPERED = json.loads((DIR / "tampered.json").read_text("utf-8"))


def keyring(case: dict[str, Any]) -> Keyring:
    return Keyring(
        tuple(MasterKey(k["key_id"], bytes.fromhex(k["key_hex"])) for k in case["keyring"])
    )


def open_case(case: dict[str, Any]) -> bytes:
    params = SealParams.from_json(case["encryption"])
    return unseal_bytes(
        RecordOpener(case["doc_id"], keyring(case), params), bytes.fromhex(case["sealed_hex"])
    )


def naive_open(case: dict[str, Any]) -> bytes:
    """docs/sealing.md sections 3 to 5, nothing else."""
    enc = case["encryption"]
    key = next(bytes.fromhex(k["key_hex"]) for k in case["keyring"] if k["key_id"] == enc["key_id"])
    data_key = aes_key_unwrap(key, bytes.fromhex(enc["wrapped_key"]))
    assert data_key.hex() == case["data_key_hex"]
    size, rs = enc["plaintext_size"], enc["record_size"]
    count = max(1, -(-size // rs))
    sealed = bytes.fromhex(case["sealed_hex"])
    ad = b"notary-seal/v1\x00" + case["doc_id"].encode("ascii")
    out, offset = b"", 0
    for i in range(count):
        length = (rs if i < count - 1 else size - rs * (count - 1)) + 16
        nonce = bytes.fromhex(enc["nonce_prefix"]) + struct.pack(">IB", i, i == count - 1)
        out += AESGCM(data_key).decrypt(nonce, sealed[offset : offset + length], ad)
        offset += length
    assert offset == len(sealed)
    return out


@pytest.mark.parametrize("case", VALID["cases"], ids=lambda c: c["desc"])
def test_valid_vector(case: dict[str, Any]) -> None:
    plaintext = bytes.fromhex(case["plaintext_hex"])
    assert open_case(case) == plaintext
    assert naive_open(case) == plaintext
    assert case["encryption"]["plaintext_size"] == len(plaintext)


@pytest.mark.parametrize("case", TAMPERED["cases"], ids=lambda c: c["desc"])
def test_tampered_vector(case: dict[str, Any]) -> None:
    with pytest.raises(SealingError) as info:
        open_case(case)
    want = case["want_error"]
    assert (info.value.reason, info.value.record) == (want["reason"], want["record"]), info.value


def test_vectors_are_what_the_generator_writes() -> None:
    files = gen_sealing_vectors.files()
    assert files["valid.json"] == VALID
    assert files["tampered.json"] == TAMPERED
