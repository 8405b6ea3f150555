"""Garbage from a peer never escapes the decoder as anything but InvalidMessageError, and
mutated valid messages either decode to something that fails ``verify`` or are rejected."""

from __future__ import annotations

import contextlib

from builders import COMMITTEE, child, propose, qc_for, timeout
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.consensus.blocks import GENESIS, Limits
from chain.consensus.codec import decode_message, encode_message
from chain.consensus.errors import InvalidMessageError
from chain.consensus.messages import Proposal, Timeout
from chain.errors import ChainError
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"a", b"bc"))
B2, _ = child(B1, F1)
VALID = [encode_message(propose(B2)), encode_message(timeout(1, 3, qc_for(B2)))]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_random_bytes_are_rejected_cleanly(data: bytes) -> None:
    with contextlib.suppress(InvalidMessageError):
        decode_message(data, Limits())


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(VALID), st.integers(min_value=0), st.integers(min_value=1, max_value=255))
def test_bit_flips_never_verify(data: bytes, where: int, mask: int) -> None:
    i = where % len(data)
    mutated = data[:i] + bytes([data[i] ^ mask]) + data[i + 1 :]
    try:
        message = decode_message(mutated, Limits())
    except InvalidMessageError:
        return
    try:
        if isinstance(message, Proposal):
            message.verify(COMMITTEE, Limits())
        elif isinstance(message, Timeout):
            message.verify(COMMITTEE)
    except ChainError:
        return
    raise AssertionError(f"a message with byte {i} flipped still verifies")
