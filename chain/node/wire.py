"""Consensus messages as bytes on the peer wire.

A frame is the canonical encoding of :mod:`chain.consensus.encoding`: a ``u8`` message
kind followed by the message's fields. Decoding is strict (bounded lengths, no trailing
bytes) and raises :class:`~chain.consensus.errors.InvalidMessageError`; it does not check
signatures, which every message verifies itself against the committee inside the core.

========  ==============  ==========================================================
kind      message         fields
========  ==============  ==========================================================
1         Proposal        block, bytes signature
2         Vote            u64 view, bytes block hash, u16 voter, bytes signature
3         Timeout         u64 view, high QC, optional TC, u16 voter, bytes signature
4         CheckpointVote  u64 height, u64 tree size, bytes root, u16 voter, bytes sig
5         BlockRequest    bytes block hash, u32 count, u64 known height
6         BlockResponse   count, blocks
100       Entries         count, entries (bytes): client entries forwarded to the
                          next leaders; node level, never seen by the core
========  ==============  ==========================================================

A batch (one HTTP body) is a ``u32`` count followed by length-prefixed frames.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chain.consensus.blocks import HASH_SIZE, SIGNATURE_SIZE, Block, Limits, QuorumCert, TimeoutCert
from chain.consensus.encoding import Reader, Writer
from chain.consensus.errors import InvalidMessageError
from chain.consensus.messages import (
    BlockRequest,
    BlockResponse,
    CheckpointVote,
    Message,
    Proposal,
    Timeout,
    Vote,
)

ENTRIES_KIND = 100
MAX_SYNC_BLOCKS = 256
MAX_BATCH_FRAMES = 10_000


def encode_message(message: Message) -> bytes:
    """The wire frame of ``message``."""
    w = Writer()
    if isinstance(message, Proposal):
        w.u8(1)
        message.block.write(w)
        w.blob(message.signature)
    elif isinstance(message, Vote):
        w.u8(2).u64(message.view).blob(message.block_hash).u16(message.voter)
        w.blob(message.signature)
    elif isinstance(message, Timeout):
        w.u8(3).u64(message.view)
        message.high_qc.write(w)
        if message.last_tc is None:
            w.u8(0)
        else:
            w.u8(1)
            message.last_tc.write(w)
        w.u16(message.voter).blob(message.signature)
    elif isinstance(message, CheckpointVote):
        w.u8(4).u64(message.height).u64(message.tree_size).blob(message.root)
        w.u16(message.voter).blob(message.signature)
    elif isinstance(message, BlockRequest):
        w.u8(5).blob(message.block_hash).u32(message.count).u64(message.known_height)
    elif isinstance(message, BlockResponse):
        w.u8(6).u32(len(message.blocks))
        for block in message.blocks:
            block.write(w)
    else:  # pragma: no cover - Message is a closed union
        raise TypeError(f"not a consensus message: {type(message).__name__}")
    return w.getvalue()


def decode_message(data: bytes, limits: Limits) -> Message:
    """Parse one frame; raises :class:`InvalidMessageError` on any malformed input."""
    try:
        r = Reader(data)
        kind = r.u8()
        message: Message
        if kind == 1:
            block = Block.read(r, limits)
            message = Proposal(block, r.blob(exact=SIGNATURE_SIZE))
        elif kind == 2:
            message = Vote(r.u64(), r.blob(exact=HASH_SIZE), r.u16(), r.blob(exact=SIGNATURE_SIZE))
        elif kind == 3:
            view = r.u64()
            qc = QuorumCert.read(r)
            tc = TimeoutCert.read(r) if r.flag() else None
            message = Timeout(view, qc, tc, r.u16(), r.blob(exact=SIGNATURE_SIZE))
        elif kind == 4:
            message = CheckpointVote(
                r.u64(), r.u64(), r.blob(exact=HASH_SIZE), r.u16(), r.blob(exact=SIGNATURE_SIZE)
            )
        elif kind == 5:
            message = BlockRequest(r.blob(exact=HASH_SIZE), r.u32(), r.u64())
        elif kind == 6:
            n = r.count(max_count=MAX_SYNC_BLOCKS)
            message = BlockResponse(tuple(Block.read(r, limits) for _ in range(n)))
        else:
            raise InvalidMessageError(f"unknown message kind {kind}")
        r.end()
        return message
    except InvalidMessageError:
        raise
    except (ValueError, OverflowError) as e:
        raise InvalidMessageError(f"malformed message: {e}") from None


@dataclass(frozen=True)
class ForwardedEntries:
    """Client entries a validator forwards to the leaders of the next views, so they are
    proposed without waiting for the receiving validator's own turn to lead."""

    entries: tuple[bytes, ...]


def encode_entries(entries: Sequence[bytes]) -> bytes:
    """The wire frame of forwarded ``entries``."""
    w = Writer().u8(ENTRIES_KIND).u32(len(entries))
    for entry in entries:
        w.blob(entry)
    return w.getvalue()


def decode_frame(data: bytes, limits: Limits) -> Message | ForwardedEntries:
    """Parse one peer frame: a consensus message or forwarded entries."""
    if data[:1] == bytes([ENTRIES_KIND]):
        r = Reader(data)
        r.u8()
        n = r.count(max_count=limits.max_entries)
        entries = tuple(r.blob(max_len=limits.max_entry_bytes) for _ in range(n))
        r.end()
        return ForwardedEntries(entries)
    return decode_message(data, limits)


def encode_batch(frames: Sequence[bytes]) -> bytes:
    """Several frames in one body: u32 count, then each frame length-prefixed."""
    w = Writer().u32(len(frames))
    for frame in frames:
        w.blob(frame)
    return w.getvalue()


def decode_batch(data: bytes, max_frame: int) -> list[bytes]:
    """The frames of a batch body; raises :class:`InvalidMessageError` if malformed."""
    r = Reader(data)
    n = r.count(max_count=MAX_BATCH_FRAMES)
    frames = [r.blob(max_len=max_frame) for _ in range(n)]
    r.end()
    return frames
