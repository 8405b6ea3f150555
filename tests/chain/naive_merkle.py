"""A deliberately naive RFC 9162 Merkle tree: the reference the fast code is checked against.

Each function transcribes RFC 9162 section 2.1 literally (MTH in 2.1.1, PATH in 2.1.3.1,
PROOF/SUBPROOF in 2.1.4.1), recursing over lists of entries, and shares no code with
``chain.merkle``. Exponential in nothing, but O(n) per call: for small trees only.
"""

from __future__ import annotations

import hashlib


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def split_point(n: int) -> int:
    """The largest power of two smaller than n (n > 1)."""
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(entries: list[bytes]) -> bytes:
    """MTH(D[n]) over raw entries."""
    n = len(entries)
    if n == 0:
        return sha256(b"")
    if n == 1:
        return sha256(b"\x00" + entries[0])
    k = split_point(n)
    return sha256(b"\x01" + mth(entries[:k]) + mth(entries[k:]))


def path(m: int, entries: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]): the inclusion proof of entry m."""
    n = len(entries)
    if n == 1:
        return []
    k = split_point(n)
    if m < k:
        return [*path(m, entries[:k]), mth(entries[k:])]
    return [*path(m - k, entries[k:]), mth(entries[:k])]


def subproof(m: int, entries: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b)."""
    n = len(entries)
    if m == n:
        return [] if b else [mth(entries)]
    k = split_point(n)
    if m <= k:
        return [*subproof(m, entries[:k], b), mth(entries[k:])]
    return [*subproof(m - k, entries[k:], False), mth(entries[:k])]


def proof(m: int, entries: list[bytes]) -> list[bytes]:
    """PROOF(m, D[n]): the consistency proof from the first m entries to all n."""
    if m == 0 or m == len(entries):
        return []
    return subproof(m, entries, True)
