import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from notary.entry import (
    EntryError,
    commitment,
    commitment_matches,
    document_entry,
    parse_document_entry,
)

SALT = bytes(range(32))
DIGEST = hashlib.sha256(b"hello").digest()


def test_commitment_is_the_documented_construction() -> None:
    want = hashlib.sha256(b"notary/commit/v1" + SALT + DIGEST).digest()
    assert commitment(SALT, DIGEST) == want
    assert commitment_matches(SALT, DIGEST, want)
    assert not commitment_matches(bytes(32), DIGEST, want)


def test_entry_bytes_are_canonical_json_without_plaintext() -> None:
    data = document_entry(SALT, DIGEST).to_bytes()
    c = commitment(SALT, DIGEST).hex()
    assert data == b'{"commitment":"' + c.encode() + b'","type":"document","v":1}'
    assert DIGEST.hex().encode() not in data


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=32, max_size=32))
def test_round_trip(salt: bytes, digest: bytes) -> None:
    e = document_entry(salt, digest)
    assert parse_document_entry(e.to_bytes()) == e


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff",
        b"[]",
        b'{"commitment":"00","type":"document","v":1}',
        b'{"commitment":"' + b"A" * 64 + b'","type":"document","v":1}',
        b'{"commitment":"' + b"0" * 64 + b'","type":"document","v":2}',
        b'{"commitment":"' + b"0" * 64 + b'","type":"custody","v":1}',
        b'{"commitment":"' + b"0" * 64 + b'","title":"x","type":"document","v":1}',
        b'{"type":"document","commitment":"' + b"0" * 64 + b'","v":1}',
        b'{"commitment":"' + b"0" * 64 + b'","type":"document","v":1} ',
    ],
)
def test_malformed_or_noncanonical_entries_are_rejected(data: bytes) -> None:
    with pytest.raises(EntryError):
        parse_document_entry(data)


def test_wrong_length_inputs() -> None:
    with pytest.raises(EntryError):
        commitment(b"short", DIGEST)
