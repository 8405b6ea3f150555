"""Wire encoding of consensus messages: one type byte, then the fields canonically encoded
(:mod:`chain.consensus.encoding`). ``decode_message`` is the boundary where untrusted
bytes become typed messages: it checks every length and bound and rejects trailing bytes,
raising :class:`InvalidMessageError`; signatures are checked later by ``verify``.
"""

from __future__ import annotations

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

_TYPES: dict[type, int] = {
    Proposal: 1,
    Vote: 2,
    Timeout: 3,
    CheckpointVote: 4,
    BlockRequest: 5,
    BlockResponse: 6,
}
MAX_SYNC_BLOCKS = 256


def encode_block(block: Block) -> bytes:
    """The canonical encoding of a block (header, certificates, entries)."""
    w = Writer()
    block.write(w)
    return w.getvalue()


def decode_block(data: bytes, limits: Limits) -> Block:
    """Decode :func:`encode_block` output; raises :class:`InvalidMessageError`."""
    r = Reader(data)
    block = Block.read(r, limits)
    r.end()
    return block


def encode_message(message: Message) -> bytes:
    """The wire bytes of ``message``."""
    w = Writer().u8(_TYPES[type(message)])
    if isinstance(message, Proposal):
        message.block.write(w)
        w.blob(message.signature)
    elif isinstance(message, Vote):
        w.u64(message.view).blob(message.block_hash).u16(message.voter).blob(message.signature)
    elif isinstance(message, Timeout):
        w.u64(message.view)
        message.high_qc.write(w)
        if message.last_tc is None:
            w.u8(0)
        else:
            w.u8(1)
            message.last_tc.write(w)
        w.u16(message.voter).blob(message.signature)
    elif isinstance(message, CheckpointVote):
        w.u64(message.height).u64(message.tree_size).blob(message.root)
        w.u16(message.voter).blob(message.signature)
    elif isinstance(message, BlockRequest):
        w.blob(message.block_hash).u32(message.count).u64(message.known_height)
    else:
        w.u32(len(message.blocks))
        for block in message.blocks:
            block.write(w)
    return w.getvalue()


def decode_message(data: bytes, limits: Limits) -> Message:
    """Parse wire bytes into a message; raises :class:`InvalidMessageError` if malformed."""
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
        raise InvalidMessageError(f"unknown message type {kind}")
    r.end()
    return message
