"""Mempool: dedupe by hash, all-or-nothing bounds (back-pressure), batches by count/bytes."""

from __future__ import annotations

import pytest

from chain.consensus.errors import InvalidMessageError
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.errors import MempoolFullError
from chain.merkle import leaf_hash


def test_dedupe_and_remove() -> None:
    m = Mempool(MempoolConfig(max_entries=10))
    leaves = m.add([b"a", b"b", b"a"])
    assert leaves == [leaf_hash(b"a"), leaf_hash(b"b"), leaf_hash(b"a")]
    assert len(m) == 2 and m.total_bytes == 2
    m.add([b"b"])
    assert len(m) == 2
    m.remove([leaf_hash(b"a")])
    assert len(m) == 1 and leaf_hash(b"b") in m and m.total_bytes == 1


def test_full_mempool_refuses_whole_batch() -> None:
    m = Mempool(MempoolConfig(max_entries=3, max_bytes=100))
    m.add([b"1", b"2"])
    with pytest.raises(MempoolFullError):
        m.add([b"3", b"4"])
    assert len(m) == 2  # nothing of the refused batch was admitted
    m.add([b"3", b"1"])  # a duplicate costs nothing
    assert len(m) == 3
    big = Mempool(MempoolConfig(max_entries=100, max_bytes=10))
    with pytest.raises(MempoolFullError):
        big.add([b"x" * 6, b"y" * 6])


def test_entry_size_bounds() -> None:
    m = Mempool(MempoolConfig(max_entry_bytes=4))
    with pytest.raises(InvalidMessageError):
        m.add([b"12345"])
    with pytest.raises(InvalidMessageError):
        m.add([b""])


def test_batches_by_count_bytes_and_exclusion() -> None:
    m = Mempool(MempoolConfig(batch_entries=3, batch_bytes=5))
    m.add([b"aa", b"bb", b"cc", b"d"])
    assert m.batch() == (b"aa", b"bb")  # the third would exceed 5 bytes
    assert m.batch(exclude={leaf_hash(b"aa")}) == (b"bb", b"cc", b"d")
    m2 = Mempool(MempoolConfig(batch_entries=2, batch_bytes=100))
    m2.add([b"1", b"2", b"3"])
    assert m2.batch() == (b"1", b"2") and m2.ready()
