"""RFC 9162 Merkle trees: hashing, roots, inclusion and consistency proofs.

Pure functions, no I/O. Hashing is RFC 9162 section 2.1 with SHA-256::

    leaf hash  = SHA-256(0x00 || entry)
    node hash  = SHA-256(0x01 || left || right)
    empty root = SHA-256("")

Computing is separate from comparing: :func:`root_from_inclusion_proof` and
:func:`root_from_consistency_proof` compute a root from a proof, :func:`verify_inclusion`
and :func:`verify_consistency` compare it with the expected root and raise
:class:`~chain.errors.InclusionProofError` / :class:`~chain.errors.ConsistencyProofError`
carrying both roots. Malformed input (an index outside the tree, a proof of the wrong
length, a hash of the wrong length, an old size above the new size) raises the same
error type with a message saying what is wrong, never a bare ``IndexError``.

Proof generation is expressed over *ranges*: every element of an RFC 9162 proof is
MTH(D[begin:end]) for a range ``[begin, end)`` of leaves (:func:`inclusion_proof_ranges`,
:func:`consistency_proof_ranges`). A range splits into at most log2(n) perfect subtrees
(:func:`perfect_subtrees`), so a store that keeps the root of every perfect subtree can
build any proof with O(log n) reads; :mod:`chain.log` does exactly that.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chain.errors import ConsistencyProofError, InclusionProofError, ProofError

HASH_SIZE = 32

_LEAF_PREFIX = b"\x00"
_NODE_PREFIX = b"\x01"
_EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(entry: bytes) -> bytes:
    """Return the RFC 9162 leaf hash SHA-256(0x00 || entry) of one log entry."""
    return hashlib.sha256(_LEAF_PREFIX + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the RFC 9162 interior node hash SHA-256(0x01 || left || right).

    Precondition: ``left`` and ``right`` are 32-byte hashes (not checked here: this is
    the hot path; the proof verifiers check their inputs before hashing).
    """
    return hashlib.sha256(_NODE_PREFIX + left + right).digest()


def empty_root() -> bytes:
    """Return the root of the empty tree, SHA-256 of the empty string."""
    return _EMPTY_ROOT


def _largest_power_of_two_below(n: int) -> int:
    """Return the largest power of two strictly less than ``n`` (precondition n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Return the root of consecutive perfect subtrees of strictly decreasing size.

    ``hashes`` are the roots of the perfect subtrees that MTH's split yields for one
    range, left to right (for example the hashes of a :class:`CompactRange`, or the
    output of :func:`perfect_subtrees` looked up in a store). MTH puts the largest power
    of two on the left at each split, so the root is folded from the right.
    Precondition: ``hashes`` is not empty.
    """
    root = hashes[-1]
    for h in reversed(hashes[:-1]):
        root = node_hash(h, root)
    return root


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH over already hashed leaves (RFC 9162 section 2.1.1).

    Costs O(n) hashing and O(log n) memory besides the input.
    """
    if not leaf_hashes:
        return _EMPTY_ROOT
    return CompactRange.empty().append(leaf_hashes).root()


def perfect_subtrees(begin: int, end: int) -> list[tuple[int, int]]:
    """Split the range ``[begin, end)`` into perfect subtrees, as ``(level, index)`` pairs.

    Node ``(level, index)`` is the perfect subtree over leaves
    ``[index * 2**level, (index + 1) * 2**level)``. The pairs come left to right with
    strictly decreasing levels; :func:`fold_right` over their hashes gives MTH(D[begin:end]).
    Precondition: ``0 <= begin < end`` and ``[begin, end)`` is a subtree of the MTH
    recursion of some tree (true of every range returned by the ``*_ranges`` functions
    and of every prefix ``[0, size)``), so ``begin`` is a multiple of the largest
    power of two not exceeding ``end - begin``.
    """
    nodes: list[tuple[int, int]] = []
    start = begin
    remaining = end - begin
    while remaining:
        level = remaining.bit_length() - 1
        nodes.append((level, start >> level))
        start += 1 << level
        remaining -= 1 << level
    return nodes


def inclusion_proof_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose MTH form RFC 9162 PATH(index, D[size]), in proof order.

    Proof order is leaf to root: the first range is the sibling of the leaf.
    Raises InclusionProofError unless ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _largest_power_of_two_below(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_proof_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Return the leaf ranges whose MTH form RFC 9162 PROOF(old_size, D[new_size]).

    Empty when ``old_size`` is 0 or equals ``new_size`` (RFC 9162 section 2.1.4.1).
    Raises ConsistencyProofError unless ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(
            f"old tree size {old_size} must lie between 0 and the new size {new_size}"
        )
    if old_size in (0, new_size):
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi, m = 0, new_size, old_size
    # ``complete`` is SUBPROOF's b flag: true while the old tree is a left prefix of
    # the current subtree, whose root the verifier already knows.
    complete = True
    while True:
        if m == hi - lo:
            if not complete:
                ranges.append((lo, hi))
            break
        k = _largest_power_of_two_below(hi - lo)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            m -= k
            complete = False
    ranges.reverse()
    return ranges


def proof_from_ranges(
    ranges: Sequence[tuple[int, int]], subtree_hash: Callable[[int, int], bytes]
) -> list[bytes]:
    """Build a proof from its ranges, given ``subtree_hash(level, index)`` of perfect subtrees.

    Precondition: ``subtree_hash`` returns the 32-byte root of the perfect subtree
    ``(level, index)`` (see :func:`perfect_subtrees`).
    """
    return [
        fold_right([subtree_hash(level, idx) for level, idx in perfect_subtrees(begin, end)])
        for begin, end in ranges
    ]


def inclusion_proof(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the RFC 9162 inclusion proof for leaf ``index`` of an in-memory tree.

    O(n) hashing: for small trees and tests; :class:`chain.log.MerkleLog` serves proofs
    of large trees in O(log n). Raises InclusionProofError unless index < len(leaf_hashes).
    """
    ranges = inclusion_proof_ranges(index, len(leaf_hashes))
    return [root_hash(leaf_hashes[begin:end]) for begin, end in ranges]


def consistency_proof(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Return the RFC 9162 consistency proof from ``old_size`` to an in-memory tree.

    O(n) hashing, like :func:`inclusion_proof`. Raises ConsistencyProofError unless
    ``0 <= old_size <= len(leaf_hashes)``.
    """
    ranges = consistency_proof_ranges(old_size, len(leaf_hashes))
    return [root_hash(leaf_hashes[begin:end]) for begin, end in ranges]


def _check_hash(error: type[ProofError], what: str, value: object) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__
        raise error(f"{what} must be a {HASH_SIZE}-byte hash, got {got}")


def _check_proof(error: type[ProofError], proof: Sequence[bytes]) -> None:
    for i, element in enumerate(proof):
        _check_hash(error, f"proof element {i}", element)


def _inclusion_proof_length(index: int, size: int) -> int:
    # The path splits into an "inner" part, below the point where the leaf's path
    # leaves the last (rightmost) leaf's path, and a "border" part of left siblings
    # above it, one per set bit of the remaining index (transparency-dev/merkle's
    # decompInclProof).
    inner = (index ^ (size - 1)).bit_length()
    border = (index >> inner).bit_count()
    return inner + border


def root_from_inclusion_proof(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """Compute the root that ``proof`` yields for ``leaf`` at ``index`` in a tree of ``size``.

    RFC 9162 section 2.1.3.2, without the final comparison. ``leaf`` is the leaf hash,
    not the entry. Raises InclusionProofError when the input is malformed: index
    outside ``[0, size)``, a proof length that does not fit index and size, or a hash
    that is not 32 bytes.
    """
    if not isinstance(index, int) or not isinstance(size, int):
        raise InclusionProofError("index and size must be integers")
    if not 0 <= index < size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")
    _check_hash(InclusionProofError, "leaf hash", leaf)
    _check_proof(InclusionProofError, proof)
    want = _inclusion_proof_length(index, size)
    if len(proof) != want:
        raise InclusionProofError(
            f"inclusion proof has {len(proof)} elements, index {index} in a tree of "
            f"size {size} needs {want}"
        )
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            # Skip the levels where this node has no right sibling: the last node of
            # a level is promoted unchanged.
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    # The length check above guarantees the walk ends at the root.
    assert sn == 0
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf`` (a leaf hash) is at ``index`` of the tree of ``size`` with ``root``.

    Raises InclusionProofError carrying the expected and calculated roots when the
    proof leads elsewhere, or with a message when the input is malformed.
    """
    _check_hash(InclusionProofError, "root", root)
    calculated = root_from_inclusion_proof(index, size, leaf, proof)
    if calculated != root:
        raise InclusionProofError(
            f"inclusion proof of leaf {index} in tree of size {size} does not match the root",
            expected=root,
            calculated=calculated,
        )


def _consistency_proof_length(old_size: int, new_size: int) -> int:
    # As _inclusion_proof_length for the old tree's last leaf, minus the levels under
    # the old tree's rightmost perfect subtree (its root is one element), plus the
    # seed element unless the old tree is itself perfect (then the verifier knows it).
    shift = (old_size & -old_size).bit_length() - 1
    inner = ((old_size - 1) ^ (new_size - 1)).bit_length() - shift
    border = ((old_size - 1) >> (inner + shift)).bit_count()
    seed = 0 if old_size == 1 << shift else 1
    return seed + inner + border


def consistency_roots(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> tuple[bytes, bytes]:
    """Compute the (old root, new root) pair that a consistency proof yields.

    RFC 9162 section 2.1.4.2, without the comparisons. ``old_root`` only seeds the walk
    when ``old_size`` is a power of two (then the proof omits it). Preconditions
    (else ConsistencyProofError): ``0 < old_size < new_size``, hashes of 32 bytes,
    and a proof length that fits the two sizes.
    """
    if not isinstance(old_size, int) or not isinstance(new_size, int):
        raise ConsistencyProofError("tree sizes must be integers")
    if not 0 < old_size < new_size:
        raise ConsistencyProofError(
            f"consistency roots need 0 < old size < new size, got {old_size} and {new_size}"
        )
    _check_hash(ConsistencyProofError, "old root", old_root)
    _check_proof(ConsistencyProofError, proof)
    want = _consistency_proof_length(old_size, new_size)
    if len(proof) != want:
        raise ConsistencyProofError(
            f"consistency proof has {len(proof)} elements, sizes {old_size} -> {new_size} "
            f"need {want}"
        )
    path = list(proof)
    if old_size & (old_size - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    assert sn == 0
    return fr, sr


def root_from_consistency_proof(
    old_size: int, new_size: int, old_root: bytes, proof: Sequence[bytes]
) -> bytes:
    """Compute the new root that ``proof`` links to ``old_root``.

    The proof also determines the old root; when that differs from ``old_root`` this
    raises ConsistencyProofError carrying both (the proof does not extend that tree).
    With ``old_size == new_size`` the proof must be empty and the result is ``old_root``.
    An empty old tree determines no new root, so ``old_size == 0 < new_size`` raises
    (use :func:`verify_consistency`, which accepts it with an empty proof).
    Malformed input raises ConsistencyProofError with a message.
    """
    if not isinstance(old_size, int) or not isinstance(new_size, int):
        raise ConsistencyProofError("tree sizes must be integers")
    if not 0 <= old_size <= new_size:
        raise ConsistencyProofError(
            f"old tree size {old_size} must lie between 0 and the new size {new_size}"
        )
    _check_hash(ConsistencyProofError, "old root", old_root)
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError(
                f"consistency proof between equal sizes {old_size} must be empty, "
                f"has {len(proof)} elements"
            )
        return old_root
    if old_size == 0:
        raise ConsistencyProofError("a proof from the empty tree determines no new root")
    calc_old, calc_new = consistency_roots(old_size, new_size, old_root, proof)
    if calc_old != old_root:
        raise ConsistencyProofError(
            f"consistency proof {old_size} -> {new_size} does not match the old root",
            expected=old_root,
            calculated=calc_old,
        )
    return calc_new


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``new_size``, ``new_root``) extends (``old_size``, ``old_root``).

    RFC 9162 section 2.1.4.2. Raises ConsistencyProofError carrying the expected and
    calculated roots when the proof does not link them, or with a message when the
    input is malformed. Equal sizes need an empty proof and equal roots; an old size
    of 0 needs an empty proof and the empty root as ``old_root``.
    """
    _check_hash(ConsistencyProofError, "new root", new_root)
    if isinstance(old_size, int) and old_size == 0 and isinstance(new_size, int):
        _check_hash(ConsistencyProofError, "old root", old_root)
        if new_size < 0:
            raise ConsistencyProofError(f"new tree size {new_size} is negative")
        if proof:
            raise ConsistencyProofError(
                f"consistency proof from the empty tree must be empty, has {len(proof)} elements"
            )
        if old_root != _EMPTY_ROOT:
            raise ConsistencyProofError(
                "old root of the empty tree is not SHA-256 of the empty string",
                expected=_EMPTY_ROOT,
                calculated=old_root,
            )
        if new_size == 0 and new_root != _EMPTY_ROOT:
            raise ConsistencyProofError(
                "new root of the empty tree is not SHA-256 of the empty string",
                expected=new_root,
                calculated=_EMPTY_ROOT,
            )
        return
    calculated = root_from_consistency_proof(old_size, new_size, old_root, proof)
    if calculated != new_root:
        raise ConsistencyProofError(
            f"consistency proof {old_size} -> {new_size} does not match the new root",
            expected=new_root,
            calculated=calculated,
        )


def extend_levels(
    size: int, frontier: Sequence[bytes], leaf_hashes: Sequence[bytes]
) -> tuple[list[list[bytes]], tuple[bytes, ...]]:
    """Append leaves to a tree given only its frontier; return new nodes and new frontier.

    ``frontier`` is the :class:`CompactRange` hashes of ``[0, size)``. The first result
    lists, per level L, the perfect subtrees completed by this append, i.e. nodes
    ``(L, i)`` for ``size >> L <= i < new_size >> L`` in index order (level 0 is
    ``leaf_hashes`` itself). The second is the frontier of ``[0, new_size)``.
    Cost: O(k + log n) hashes for k leaves. Raises ProofError unless ``len(frontier)``
    equals the number of set bits of ``size``.
    """
    if size < 0 or len(frontier) != size.bit_count():
        raise ProofError(
            f"a frontier of size {size} has {size.bit_count()} hashes, got {len(frontier)}"
        )
    new_size = size + len(leaf_hashes)
    # Frontier hashes sit at the levels of the set bits of size, highest first.
    by_level: dict[int, bytes] = {}
    remaining = list(frontier)
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            by_level[level] = remaining.pop(0)
    levels: list[list[bytes]] = [list(leaf_hashes)]
    new_frontier: list[bytes] = []
    level = 0
    current = levels[0]
    while (new_size >> level) > 0:
        # Pair the carried-over odd node (if any) with this level's new nodes.
        seq = [by_level[level], *current] if size >> level & 1 else current
        if new_size >> level & 1:
            new_frontier.append(seq[-1])
            seq = seq[:-1]
        parents = [
            hashlib.sha256(_NODE_PREFIX + seq[i] + seq[i + 1]).digest()
            for i in range(0, len(seq), 2)
        ]
        level += 1
        if (new_size >> level) == 0:
            break
        levels.append(parents)
        current = parents
    new_frontier.reverse()
    return levels, tuple(new_frontier)


@dataclass(frozen=True)
class CompactRange:
    """The frontier of a tree: roots of the perfect subtrees of ``[0, size)``, left to right.

    One hash per set bit of ``size``, largest subtree first, so O(log n) memory is
    enough to append and to compute the root (RFC 9162 MTH) without the leaves.
    """

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        # Frontiers may arrive from peers (a parent block's state): check the shape here
        # so a malformed one fails as a ProofError, not deep inside the hashing.
        if not isinstance(self.size, int) or self.size < 0:
            raise ProofError(f"a compact range needs a size >= 0, got {self.size!r}")
        if len(self.hashes) != self.size.bit_count():
            raise ProofError(
                f"a compact range of size {self.size} needs {self.size.bit_count()} hashes, "
                f"got {len(self.hashes)}"
            )
        for i, h in enumerate(self.hashes):
            _check_hash(ProofError, f"compact range hash {i}", h)

    @classmethod
    def empty(cls) -> CompactRange:
        """Return the frontier of the empty tree."""
        return cls(0, ())

    def append(self, leaf_hashes: Sequence[bytes]) -> CompactRange:
        """Return a new frontier with ``leaf_hashes`` appended; O(k + log n) hashes."""
        if not leaf_hashes:
            return self
        _, frontier = extend_levels(self.size, self.hashes, leaf_hashes)
        return CompactRange(self.size + len(leaf_hashes), frontier)

    def root(self) -> bytes:
        """Return MTH of the tree ``[0, size)``; the empty root when size is 0."""
        if not self.hashes:
            return _EMPTY_ROOT
        return fold_right(self.hashes)

    def encode(self) -> bytes:
        """Return the frontier as bytes: size (8 bytes, big-endian) then the hashes."""
        return self.size.to_bytes(8, "big") + b"".join(self.hashes)

    @classmethod
    def decode(cls, data: bytes) -> CompactRange:
        """Parse :meth:`encode` output; raises ProofError when it is malformed."""
        if len(data) < 8 or (len(data) - 8) % HASH_SIZE:
            raise ProofError(f"an encoded compact range cannot be {len(data)} bytes long")
        size = int.from_bytes(data[:8], "big")
        hashes = tuple(data[i : i + HASH_SIZE] for i in range(8, len(data), HASH_SIZE))
        return cls(size, hashes)
