"""chain.merkle: known answers, the naive RFC 9162 reference, malformed input."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain import merkle
from chain.errors import ConsistencyProofError, InclusionProofError, ProofError

try:  # tests/chain is a rootdir-style directory today; also work if it becomes a package
    from naive_merkle import mth, path, proof
except ImportError:  # pragma: no cover
    from tests.chain.naive_merkle import mth, path, proof

# The Certificate Transparency reference data (RFC 6962 test leaves and tree heads,
# used by every RFC 6962 implementation; RFC 9162 hashes identically).
CT_ENTRIES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
CT_INCLUSION = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CT_CONSISTENCY = [
    (
        2,
        8,
        [
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        6,
        8,
        [
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
]
CT_LEAVES = [merkle.leaf_hash(e) for e in CT_ENTRIES]


def entries_of(n: int, salt: int = 0) -> list[bytes]:
    return [f"entry-{salt}-{i}".encode() for i in range(n)]


# --- hashing and known answers ------------------------------------------------


def test_hash_prefixes() -> None:
    assert merkle.leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    a, b = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert merkle.node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert merkle.node_hash(a, b) != merkle.node_hash(b, a)
    assert merkle.empty_root().hex() == CT_ROOTS[0]


@pytest.mark.parametrize("size", range(9))
def test_ct_reference_roots(size: int) -> None:
    assert merkle.root_hash(CT_LEAVES[:size]).hex() == CT_ROOTS[size]
    assert merkle.CompactRange.empty().append(CT_LEAVES[:size]).root().hex() == CT_ROOTS[size]


@pytest.mark.parametrize(("index", "size", "want"), CT_INCLUSION)
def test_ct_reference_inclusion(index: int, size: int, want: list[str]) -> None:
    got = merkle.inclusion_proof(index, CT_LEAVES[:size])
    assert [h.hex() for h in got] == want
    root = bytes.fromhex(CT_ROOTS[size])
    merkle.verify_inclusion(index, size, CT_LEAVES[index], got, root)


@pytest.mark.parametrize(("old", "new", "want"), CT_CONSISTENCY)
def test_ct_reference_consistency(old: int, new: int, want: list[str]) -> None:
    got = merkle.consistency_proof(old, CT_LEAVES[:new])
    assert [h.hex() for h in got] == want
    old_root, new_root = bytes.fromhex(CT_ROOTS[old]), bytes.fromhex(CT_ROOTS[new])
    merkle.verify_consistency(old, new, old_root, new_root, got)
    assert merkle.root_from_consistency_proof(old, new, old_root, got) == new_root


# --- exhaustive small sizes against the naive reference ------------------------

SMALL = 40
SMALL_ENTRIES = entries_of(SMALL)
SMALL_LEAVES = [merkle.leaf_hash(e) for e in SMALL_ENTRIES]
SMALL_ROOTS = [mth(SMALL_ENTRIES[:n]) for n in range(SMALL + 1)]


def test_roots_match_reference_for_every_small_size() -> None:
    for n in range(SMALL + 1):
        assert merkle.root_hash(SMALL_LEAVES[:n]) == SMALL_ROOTS[n], n


def test_every_inclusion_proof_of_small_trees() -> None:
    for n in range(1, SMALL + 1):
        for i in range(n):
            want = path(i, SMALL_ENTRIES[:n])
            got = merkle.inclusion_proof(i, SMALL_LEAVES[:n])
            assert got == want, (i, n)
            assert merkle.root_from_inclusion_proof(i, n, SMALL_LEAVES[i], got) == SMALL_ROOTS[n]
            merkle.verify_inclusion(i, n, SMALL_LEAVES[i], got, SMALL_ROOTS[n])


def test_every_consistency_proof_of_small_trees() -> None:
    for n in range(SMALL + 1):
        for m in range(n + 1):
            want = proof(m, SMALL_ENTRIES[:n])
            got = merkle.consistency_proof(m, SMALL_LEAVES[:n])
            assert got == want, (m, n)
            merkle.verify_consistency(m, n, SMALL_ROOTS[m], SMALL_ROOTS[n], got)


def test_wrong_proofs_of_small_trees_fail() -> None:
    # Every proof checked against the root of the next size must fail: no
    # (index, size) pair can be fooled by the proof of a neighbour.
    for n in range(1, SMALL):
        for i in range(n):
            got = merkle.inclusion_proof(i, SMALL_LEAVES[:n])
            with pytest.raises(InclusionProofError):
                merkle.verify_inclusion(i, n, SMALL_LEAVES[i], got, SMALL_ROOTS[n + 1])
        for m in range(1, n):
            got = merkle.consistency_proof(m, SMALL_LEAVES[:n])
            with pytest.raises(ConsistencyProofError):
                merkle.verify_consistency(m, n, SMALL_ROOTS[m], SMALL_ROOTS[n + 1], got)


# --- hypothesis: random sizes against the naive reference ----------------------

sizes = st.integers(min_value=1, max_value=300)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_inclusion_matches_reference(size: int, data: st.DataObject) -> None:
    entries = entries_of(size, salt=size)
    leaves = [merkle.leaf_hash(e) for e in entries]
    index = data.draw(st.integers(min_value=0, max_value=size - 1))
    want = path(index, entries)
    assert merkle.inclusion_proof(index, leaves) == want
    assert merkle.root_from_inclusion_proof(index, size, leaves[index], want) == mth(entries)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(size=sizes, data=st.data())
def test_consistency_matches_reference(size: int, data: st.DataObject) -> None:
    entries = entries_of(size, salt=size)
    leaves = [merkle.leaf_hash(e) for e in entries]
    old = data.draw(st.integers(min_value=0, max_value=size))
    want = proof(old, entries)
    assert merkle.consistency_proof(old, leaves) == want
    merkle.verify_consistency(old, size, mth(entries[:old]), mth(entries), want)


@settings(derandomize=True, max_examples=60, deadline=None)
@given(chunks=st.lists(st.integers(min_value=0, max_value=70), min_size=1, max_size=8))
def test_compact_range_appends_match_reference(chunks: list[int]) -> None:
    entries = entries_of(sum(chunks), salt=len(chunks))
    leaves = [merkle.leaf_hash(e) for e in entries]
    cr = merkle.CompactRange.empty()
    done = 0
    for k in chunks:
        cr = cr.append(leaves[done : done + k])
        done += k
        assert cr.size == done
        assert cr.root() == mth(entries[:done])
        assert len(cr.hashes) == done.bit_count()


def test_extend_levels_lists_the_completed_subtrees() -> None:
    leaves = SMALL_LEAVES[:23]
    levels, frontier = merkle.extend_levels(
        5, merkle.CompactRange.empty().append(leaves[:5]).hashes, leaves[5:]
    )
    for level, nodes in enumerate(levels):
        first = 5 >> level
        for offset, h in enumerate(nodes):
            idx = first + offset
            begin = idx << level
            assert h == mth(SMALL_ENTRIES[begin : begin + (1 << level)]), (level, idx)
        assert len(nodes) == (23 >> level) - first
    assert merkle.fold_right(frontier) == SMALL_ROOTS[23]


# --- malformed input: the proof's own error type, never IndexError/ValueError --


ROOT8 = bytes.fromhex(CT_ROOTS[8])
PROOF5 = [bytes.fromhex(h) for h in CT_INCLUSION[1][2]]


@pytest.mark.parametrize(
    ("index", "size", "leaf", "proof_", "root", "needle"),
    [
        (8, 8, CT_LEAVES[5], PROOF5, ROOT8, "outside"),
        (-1, 8, CT_LEAVES[5], PROOF5, ROOT8, "outside"),
        (0, 0, CT_LEAVES[5], [], merkle.empty_root(), "outside"),
        (5, 8, CT_LEAVES[5][:31], PROOF5, ROOT8, "leaf hash"),
        (5, 8, CT_LEAVES[5], PROOF5, ROOT8[:31], "root"),
        (5, 8, CT_LEAVES[5], [PROOF5[0][:31], *PROOF5[1:]], ROOT8, "proof element 0"),
        (5, 8, CT_LEAVES[5], [*PROOF5[:2], "not bytes"], ROOT8, "proof element 2"),
        (5, 8, CT_LEAVES[5], PROOF5[:2], ROOT8, "needs 3"),
        (5, 8, CT_LEAVES[5], [*PROOF5, ROOT8], ROOT8, "needs 3"),
        (5, 6, CT_LEAVES[5], PROOF5, ROOT8, "needs 2"),
    ],
)
def test_malformed_inclusion_input(
    index: int, size: int, leaf: bytes, proof_: list[bytes], root: bytes, needle: str
) -> None:
    with pytest.raises(InclusionProofError, match=needle) as info:
        merkle.verify_inclusion(index, size, leaf, proof_, root)
    assert info.value.expected is None


def test_inclusion_mismatch_carries_both_roots() -> None:
    bad = [PROOF5[0], PROOF5[2], PROOF5[1]]
    with pytest.raises(InclusionProofError) as info:
        merkle.verify_inclusion(5, 8, CT_LEAVES[5], bad, ROOT8)
    assert info.value.expected == ROOT8
    assert info.value.calculated == merkle.root_from_inclusion_proof(5, 8, CT_LEAVES[5], bad)
    assert info.value.calculated != ROOT8
    assert ROOT8.hex() in str(info.value)


ROOT6 = bytes.fromhex(CT_ROOTS[6])
CPROOF = [bytes.fromhex(h) for h in CT_CONSISTENCY[1][2]]


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof_", "needle"),
    [
        (8, 6, ROOT8, ROOT6, CPROOF, "between 0 and"),
        (-1, 8, ROOT6, ROOT8, CPROOF, "between 0 and"),
        (6, 8, ROOT6[:31], ROOT8, CPROOF, "old root"),
        (6, 8, ROOT6, ROOT8[:31], CPROOF, "new root"),
        (6, 8, ROOT6, ROOT8, [CPROOF[0][:31], *CPROOF[1:]], "proof element 0"),
        (6, 8, ROOT6, ROOT8, [], "need 3"),
        (6, 8, ROOT6, ROOT8, CPROOF[:2], "need 3"),
        (6, 8, ROOT6, ROOT8, [*CPROOF, ROOT8], "need 3"),
        (6, 6, ROOT6, ROOT6, CPROOF, "must be empty"),
        (0, 8, merkle.empty_root(), ROOT8, [ROOT8], "must be empty"),
    ],
)
def test_malformed_consistency_input(
    old: int, new: int, old_root: bytes, new_root: bytes, proof_: list[bytes], needle: str
) -> None:
    with pytest.raises(ConsistencyProofError, match=needle):
        merkle.verify_consistency(old, new, old_root, new_root, proof_)


def test_consistency_degenerate_cases() -> None:
    r4, r5 = SMALL_ROOTS[4], SMALL_ROOTS[5]
    merkle.verify_consistency(4, 4, r4, r4, [])
    with pytest.raises(ConsistencyProofError) as info:
        merkle.verify_consistency(4, 4, r4, r5, [])
    assert (info.value.expected, info.value.calculated) == (r5, r4)
    merkle.verify_consistency(0, 8, merkle.empty_root(), ROOT8, [])
    merkle.verify_consistency(0, 0, merkle.empty_root(), merkle.empty_root(), [])
    with pytest.raises(ConsistencyProofError):
        merkle.verify_consistency(0, 8, r4, ROOT8, [])
    with pytest.raises(ConsistencyProofError):
        merkle.root_from_consistency_proof(0, 8, merkle.empty_root(), [])
    assert merkle.root_from_consistency_proof(4, 4, r4, []) == r4


def test_consistency_wrong_old_root_carries_both_roots() -> None:
    # Old size 6 is not a power of two, so the proof fixes the old root itself.
    with pytest.raises(ConsistencyProofError) as info:
        merkle.root_from_consistency_proof(6, 8, SMALL_ROOTS[6], CPROOF)
    assert info.value.expected == SMALL_ROOTS[6]
    assert info.value.calculated == ROOT6


def test_proof_generators_reject_out_of_range() -> None:
    with pytest.raises(InclusionProofError):
        merkle.inclusion_proof(3, SMALL_LEAVES[:3])
    with pytest.raises(ConsistencyProofError):
        merkle.consistency_proof(4, SMALL_LEAVES[:3])
    with pytest.raises(ProofError):
        merkle.CompactRange(3, (SMALL_LEAVES[0],))


def test_compact_range_encoding_round_trip_and_rejects_garbage() -> None:
    cr = merkle.CompactRange.empty().append(SMALL_LEAVES[:27])
    assert merkle.CompactRange.decode(cr.encode()) == cr
    assert merkle.CompactRange.decode(merkle.CompactRange.empty().encode()).root() == (
        merkle.empty_root()
    )
    data = cr.encode()
    for bad in [data[:-1], data[:7], data + SMALL_LEAVES[0], (26).to_bytes(8, "big") + data[8:]]:
        with pytest.raises(ProofError):
            merkle.CompactRange.decode(bad)
    with pytest.raises(ProofError, match="hash 1"):
        merkle.CompactRange(3, (SMALL_LEAVES[0], SMALL_LEAVES[1][:31]))
    with pytest.raises(ProofError):
        merkle.CompactRange(-1, ())
