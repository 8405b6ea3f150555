"""Blocks and certificates: quorum certificates (QC) and timeout certificates (TC).

A QC is 2f+1 votes over ``(chain id, view, block hash)``; a TC is 2f+1 timeouts of one
view, each over ``(chain id, view, the sender's high-QC view)``, and carries the highest
of those QCs. A block's hash covers its header; the header covers the payload through
its digest and the log after the block through ``(tree_size, root)``. Each certificate and
block verifies itself against the committee (``verify``) and encodes itself canonically
(``write``/``read``, see :mod:`chain.consensus.encoding`).
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from chain.consensus.committee import Committee
from chain.consensus.encoding import Reader, Writer, tagged
from chain.consensus.errors import InvalidBlockError, InvalidMessageError, ensure
from chain.merkle import CompactRange, empty_root, leaf_hash

HASH_SIZE = 32
SIGNATURE_SIZE = 64
ZERO_HASH = bytes(HASH_SIZE)
MAX_VALIDATORS = 1024


def vote_message(chain_id: str, view: int, block_hash: bytes) -> bytes:
    """The bytes a validator signs to vote for ``block_hash`` in ``view``."""
    return tagged("vote").text(chain_id).u64(view).blob(block_hash).getvalue()


def timeout_message(chain_id: str, view: int, high_qc_view: int) -> bytes:
    """The bytes a validator signs to time out of ``view`` holding a QC of ``high_qc_view``."""
    return tagged("timeout").text(chain_id).u64(view).u64(high_qc_view).getvalue()


def payload_digest(entries: Sequence[bytes]) -> bytes:
    """SHA-256 over the encoded entry list (u32 count, then each entry length-prefixed)."""
    return hashlib.sha256(Writer().blobs(entries).getvalue()).digest()


@dataclass(frozen=True)
class Limits:
    """Size and clock limits a replica enforces on blocks."""

    max_entries: int = 10_000
    max_block_bytes: int = 4 << 20
    max_entry_bytes: int = 64 << 10
    max_clock_skew_ms: int = 5_000


@dataclass(frozen=True)
class QuorumCert:
    """2f+1 votes for ``block_hash`` in ``view``; ``signatures`` sorted by signer index."""

    view: int
    block_hash: bytes
    signatures: tuple[tuple[int, bytes], ...] = ()

    def is_genesis(self) -> bool:
        """Whether this is the unsigned certificate of the genesis block."""
        return self.view == 0

    def verify(self, committee: Committee) -> None:
        """Raise :class:`InvalidMessageError` unless this QC is valid for ``committee``.

        Valid: the genesis QC (view 0, genesis hash, no signatures), or >= quorum
        signatures of distinct validators, sorted by index, each valid.
        """
        if self.is_genesis():
            ensure(
                self.block_hash == GENESIS.hash and not self.signatures,
                InvalidMessageError,
                "malformed genesis QC",
            )
            return
        signers = [s for s, _ in self.signatures]
        ensure(
            len(self.signatures) >= committee.quorum,
            InvalidMessageError,
            f"QC for view {self.view} has {len(signers)} signatures, needs {committee.quorum}",
        )
        ensure(
            all(a < b for a, b in itertools.pairwise(signers)),
            InvalidMessageError,
            f"QC for view {self.view} has duplicate or unsorted signers",
        )
        message = vote_message(committee.chain_id, self.view, self.block_hash)
        for signer, signature in self.signatures:
            ensure(
                committee.verify(signer, message, signature),
                InvalidMessageError,
                f"QC for view {self.view}: bad signature of validator {signer}",
            )

    def write(self, w: Writer) -> None:
        """Encode: u64 view, bytes hash, count, then (u16 signer, bytes signature)*."""
        w.u64(self.view).blob(self.block_hash).u32(len(self.signatures))
        for signer, signature in self.signatures:
            w.u16(signer).blob(signature)

    @classmethod
    def read(cls, r: Reader) -> QuorumCert:
        """Decode what :meth:`write` wrote."""
        view = r.u64()
        block_hash = r.blob(exact=HASH_SIZE)
        n = r.count(max_count=MAX_VALIDATORS)
        sigs = tuple((r.u16(), r.blob(exact=SIGNATURE_SIZE)) for _ in range(n))
        return cls(view, block_hash, sigs)


@dataclass(frozen=True)
class TimeoutCert:
    """2f+1 timeouts of ``view``: ``(signer, high_qc_view, signature)`` sorted by signer,
    plus ``high_qc``, the highest QC among them (its view is the maximum high-QC view)."""

    view: int
    timeouts: tuple[tuple[int, int, bytes], ...]
    high_qc: QuorumCert

    @property
    def max_high_qc_view(self) -> int:
        """The highest high-QC view reported by the timeouts."""
        return max((v for _, v, _ in self.timeouts), default=0)

    def verify(self, committee: Committee) -> None:
        """Raise :class:`InvalidMessageError` unless this TC is valid for ``committee``."""
        signers = [s for s, _, _ in self.timeouts]
        ensure(
            len(signers) >= committee.quorum,
            InvalidMessageError,
            f"TC for view {self.view} has {len(signers)} timeouts, needs {committee.quorum}",
        )
        ensure(
            all(a < b for a, b in itertools.pairwise(signers)),
            InvalidMessageError,
            f"TC for view {self.view} has duplicate or unsorted signers",
        )
        ensure(
            self.high_qc.view == self.max_high_qc_view,
            InvalidMessageError,
            f"TC for view {self.view} carries QC of view {self.high_qc.view}, "
            f"not the highest reported ({self.max_high_qc_view})",
        )
        for signer, hqc_view, signature in self.timeouts:
            ensure(hqc_view < self.view, InvalidMessageError, "TC reports a QC from the future")
            ensure(
                committee.verify(
                    signer, timeout_message(committee.chain_id, self.view, hqc_view), signature
                ),
                InvalidMessageError,
                f"TC for view {self.view}: bad signature of validator {signer}",
            )
        self.high_qc.verify(committee)

    def write(self, w: Writer) -> None:
        """Encode: u64 view, count, (u16 signer, u64 hqc view, bytes sig)*, high QC."""
        w.u64(self.view).u32(len(self.timeouts))
        for signer, hqc_view, signature in self.timeouts:
            w.u16(signer).u64(hqc_view).blob(signature)
        self.high_qc.write(w)

    @classmethod
    def read(cls, r: Reader) -> TimeoutCert:
        """Decode what :meth:`write` wrote."""
        view = r.u64()
        n = r.count(max_count=MAX_VALIDATORS)
        timeouts = tuple((r.u16(), r.u64(), r.blob(exact=SIGNATURE_SIZE)) for _ in range(n))
        return cls(view, timeouts, QuorumCert.read(r))


@dataclass(frozen=True)
class Block:
    """A block: header fields, the QC of its parent, the TC that let its view start
    (when the parent is not from the previous view) and its entries."""

    height: int
    view: int
    parent_hash: bytes
    proposer: int
    timestamp_ms: int
    payload_digest: bytes
    tree_size: int
    root: bytes
    qc: QuorumCert
    tc: TimeoutCert | None = None
    entries: tuple[bytes, ...] = field(default=(), repr=False)

    def header_bytes(self) -> bytes:
        """The canonical header encoding the block hash is computed over."""
        return (
            tagged("block")
            .u64(self.height)
            .u64(self.view)
            .blob(self.parent_hash)
            .u16(self.proposer)
            .u64(self.timestamp_ms)
            .blob(self.payload_digest)
            .u64(self.tree_size)
            .blob(self.root)
            .u64(self.qc.view)
            .getvalue()
        )

    @cached_property
    def hash(self) -> bytes:
        """SHA-256 of :meth:`header_bytes`."""
        return hashlib.sha256(self.header_bytes()).digest()

    @cached_property
    def leaf_hashes(self) -> tuple[bytes, ...]:
        """The RFC 9162 leaf hashes of the entries, in order."""
        return tuple(leaf_hash(e) for e in self.entries)

    def known_leaf_hashes(self, leaves: tuple[bytes, ...]) -> Block:
        """Return this block with :attr:`leaf_hashes` already set to ``leaves``, which
        its builder knows (precondition: ``leaves[i] == leaf_hash(entries[i])``)."""
        if len(leaves) != len(self.entries):
            raise ValueError(f"{len(leaves)} leaf hashes for {len(self.entries)} entries")
        self.__dict__["leaf_hashes"] = leaves  # what cached_property would store
        return self

    @property
    def payload_bytes(self) -> int:
        """Total bytes of the entries."""
        return sum(len(e) for e in self.entries)

    def verify(self, committee: Committee, limits: Limits) -> None:
        """Check everything that can be checked without the parent; raises on failure.

        Structure, sizes, payload digest, the QC and TC signatures, and the view rule:
        ``view == qc.view + 1``, or a TC of ``view - 1`` whose highest QC view is
        ``<= qc.view``.
        """
        ensure(self.height >= 1 and self.view >= 1, InvalidBlockError, "block below genesis")
        ensure(committee.is_member(self.proposer), InvalidBlockError, "unknown proposer")
        ensure(self.qc.block_hash == self.parent_hash, InvalidBlockError, "QC is not for parent")
        ensure(self.qc.view < self.view, InvalidBlockError, "QC is not older than the block")
        if self.tc is None:
            ensure(
                self.qc.view + 1 == self.view,
                InvalidBlockError,
                f"block of view {self.view} on QC of view {self.qc.view} needs a TC",
            )
        else:
            ensure(
                self.tc.view + 1 == self.view and self.qc.view + 1 != self.view,
                InvalidBlockError,
                "TC is not for the previous view, or is not needed",
            )
            ensure(
                self.qc.view >= self.tc.max_high_qc_view,
                InvalidBlockError,
                "block extends a QC older than the TC's highest QC",
            )
        ensure(len(self.entries) <= limits.max_entries, InvalidBlockError, "too many entries")
        ensure(
            all(0 < len(e) <= limits.max_entry_bytes for e in self.entries),
            InvalidBlockError,
            "empty or oversized entry",
        )
        ensure(self.payload_bytes <= limits.max_block_bytes, InvalidBlockError, "block too big")
        ensure(
            payload_digest(self.entries) == self.payload_digest,
            InvalidBlockError,
            "payload digest does not match the entries",
        )
        self.qc.verify(committee)
        if self.tc is not None:
            self.tc.verify(committee)

    def verify_extends(self, parent: Block, parent_frontier: CompactRange) -> CompactRange:
        """Check this block against its parent; return the log frontier after the block.

        Raises :class:`InvalidBlockError` if height, view, timestamp or the log's size
        and root after appending the entries do not follow from the parent.
        """
        ensure(parent.hash == self.parent_hash, InvalidBlockError, "not the parent")
        ensure(self.height == parent.height + 1, InvalidBlockError, "height is not parent + 1")
        ensure(self.qc.view == parent.view, InvalidBlockError, "QC view is not the parent's")
        ensure(
            self.timestamp_ms >= parent.timestamp_ms,
            InvalidBlockError,
            "timestamp goes backwards",
        )
        frontier = parent_frontier.append(self.leaf_hashes)
        ensure(
            frontier.size == self.tree_size and frontier.root() == self.root,
            InvalidBlockError,
            f"block {self.height}: tree size/root do not match the entries",
        )
        return frontier

    def write(self, w: Writer) -> None:
        """Encode the header fields, the QC, the optional TC and the entries."""
        w.u64(self.height).u64(self.view).blob(self.parent_hash).u16(self.proposer)
        w.u64(self.timestamp_ms).blob(self.payload_digest).u64(self.tree_size).blob(self.root)
        self.qc.write(w)
        if self.tc is None:
            w.u8(0)
        else:
            w.u8(1)
            self.tc.write(w)
        w.blobs(self.entries)

    @classmethod
    def read(cls, r: Reader, limits: Limits) -> Block:
        """Decode what :meth:`write` wrote, within ``limits``."""
        height, view = r.u64(), r.u64()
        parent = r.blob(exact=HASH_SIZE)
        proposer, ts = r.u16(), r.u64()
        digest = r.blob(exact=HASH_SIZE)
        size = r.u64()
        root = r.blob(exact=HASH_SIZE)
        qc = QuorumCert.read(r)
        tc = TimeoutCert.read(r) if r.flag() else None
        entries = r.blobs(max_count=limits.max_entries, max_len=limits.max_entry_bytes)
        return cls(height, view, parent, proposer, ts, digest, size, root, qc, tc, entries)


def _genesis() -> Block:
    return Block(
        height=0,
        view=0,
        parent_hash=ZERO_HASH,
        proposer=0,
        timestamp_ms=0,
        payload_digest=payload_digest(()),
        tree_size=0,
        root=empty_root(),
        qc=QuorumCert(0, ZERO_HASH),
    )


GENESIS = _genesis()
"""The common root of every chain: height 0, view 0, the empty log."""

GENESIS_QC = QuorumCert(0, GENESIS.hash)
"""The unsigned certificate of :data:`GENESIS`."""
