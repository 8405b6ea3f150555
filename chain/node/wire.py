"""Consensus messages as bytes on the peer wire.

A frame is a consensus message as :mod:`chain.consensus.codec` encodes it (canonical
encoding of :mod:`chain.consensus.encoding`): a ``u8`` message kind followed by the
message's fields; the node adds one kind of its own (100, forwarded entries). Decoding
is strict (bounded lengths, no trailing bytes) and raises
:class:`~chain.consensus.errors.InvalidMessageError`; it does not check signatures,
which every message verifies itself against the committee inside the core.

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

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from chain.consensus import codec
from chain.consensus.blocks import Block, Limits
from chain.consensus.encoding import Reader, Writer
from chain.consensus.errors import InvalidMessageError
from chain.consensus.messages import Message, Proposal

ENTRIES_KIND = 100
MAX_BATCH_FRAMES = 10_000


# Proposal frames already hold their block's canonical encoding; the store keeps blocks
# in that same encoding, so it takes the bytes from here instead of encoding each block
# (5,000 entries) a second time. Bounded; each entry is taken at most once.
_BLOCK_BYTES: OrderedDict[bytes, bytes] = OrderedDict()
_BLOCK_BYTES_MAX = 16


def _remember_block(message: Message, frame: bytes) -> None:
    if isinstance(message, Proposal):
        tail = 4 + len(message.signature)  # the signature blob after the block
        _BLOCK_BYTES[message.block.hash] = frame[1 : len(frame) - tail]
        while len(_BLOCK_BYTES) > _BLOCK_BYTES_MAX:
            _BLOCK_BYTES.popitem(last=False)


def take_block_bytes(block: Block) -> bytes | None:
    """The canonical encoding of ``block`` if a recent proposal frame carried it."""
    return _BLOCK_BYTES.pop(block.hash, None)


def encode_message(message: Message) -> bytes:
    """The wire frame of ``message`` (:func:`chain.consensus.codec.encode_message`)."""
    frame = codec.encode_message(message)
    _remember_block(message, frame)
    return frame


def decode_message(data: bytes, limits: Limits) -> Message:
    """Parse one frame (:func:`chain.consensus.codec.decode_message`); raises
    :class:`InvalidMessageError` on any malformed input, never anything else."""
    try:
        message = codec.decode_message(data, limits)
        _remember_block(message, data)
        return message
    except InvalidMessageError:
        raise
    except (ValueError, OverflowError, IndexError) as e:
        raise InvalidMessageError(f"malformed message: {e}") from None


@dataclass(frozen=True)
class ForwardedEntries:
    """Client entries a validator forwards to the leaders of the next views, so they are
    proposed without waiting for the receiving validator's own turn to lead."""

    entries: tuple[bytes, ...]


def encode_entries(entries: Sequence[bytes]) -> bytes:
    """The wire frame of forwarded ``entries``."""
    return Writer().u8(ENTRIES_KIND).blobs(entries).getvalue()


def decode_frame(data: bytes, limits: Limits) -> Message | ForwardedEntries:
    """Parse one peer frame: a consensus message or forwarded entries."""
    if data[:1] == bytes([ENTRIES_KIND]):
        r = Reader(data)
        r.u8()
        entries = r.blobs(max_count=limits.max_entries, max_len=limits.max_entry_bytes)
        r.end()
        return ForwardedEntries(entries)
    return decode_message(data, limits)


def encode_batch(frames: Sequence[bytes]) -> bytes:
    """Several frames in one body: u32 count, then each frame length-prefixed."""
    return Writer().blobs(frames).getvalue()


def decode_batch(data: bytes, max_frame: int) -> list[bytes]:
    """The frames of a batch body; raises :class:`InvalidMessageError` if malformed."""
    r = Reader(data)
    frames = list(r.blobs(max_count=MAX_BATCH_FRAMES, max_len=max_frame))
    r.end()
    return frames
