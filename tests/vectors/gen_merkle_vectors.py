"""Generate the RFC 9162 Merkle test vectors in tests/vectors/merkle/.

Run from the repository root: ``python tests/vectors/gen_merkle_vectors.py``. The output
is deterministic (seeded), so re-running it must leave git clean.

Valid proofs and roots come from the naive recursive reference
(``tests/chain/naive_merkle.py``), never from ``chain.merkle``, the code under test. Each
valid case is followed by probes that every correct verifier must reject, modelled on
transparency-dev/merkle's adversarial probes: each proof element bit-flipped, the first
and the last element removed, a garbage element appended or prepended, wrong index, wrong
tree sizes (halved and doubled, which changes the tree's height), roots of another size,
wrong leaf, malformed hashes. Sizes ±1 are used only where they are rejected for certain
(consistency probes check the old root too); an inclusion proof checked with size ±1 may
legitimately verify against the same root, because the root, not the size, binds a tree.

Files:
  roots.json        entries and MTH for every tested size (and 0)
  inclusion.json    cases: leaf_index, tree_size, leaf_hash, proof, root, want_error
  consistency.json  cases: old_size, new_size, old_root, new_root, proof, want_error
``want_error`` is false for a proof that verifies, else the error class name of
``chain.errors`` (InclusionProofError / ConsistencyProofError).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "chain"))

from naive_merkle import mth, path, proof  # noqa: E402

OUT = HERE / "merkle"
SIZES = [*range(1, 71), 127, 128, 129, 255, 256, 257, 1023, 1024, 1025]
MAX = max(SIZES)
EDGE_SIZES = {1, 2, 3, 4, 5, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 1025}
ENTRIES = [b"notary merkle vector entry %d" % i for i in range(MAX + 1)]
EMPTY_ROOT = hashlib.sha256(b"").digest()
GARBAGE = hashlib.sha256(b"garbage").digest()
INCLUSION_ERROR = "InclusionProofError"
CONSISTENCY_ERROR = "ConsistencyProofError"


def leaf(i: int) -> bytes:
    return hashlib.sha256(b"\x00" + ENTRIES[i]).digest()


ROOTS = {n: mth(ENTRIES[:n]) for n in [0, *SIZES, *(2 * s for s in SIZES if 2 * s <= MAX)]}


def root(n: int) -> bytes:
    if n not in ROOTS:
        ROOTS[n] = mth(ENTRIES[:n])
    return ROOTS[n]


def flip(h: bytes, rng: random.Random) -> bytes:
    bit = rng.randrange(len(h) * 8)
    out = bytearray(h)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def hx(hashes: list[bytes]) -> list[str]:
    return [h.hex() for h in hashes]


def inclusion_cases(rng: random.Random) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def case(desc: str, i: int, n: int, lf: bytes, pf: list[bytes], rt: bytes, err: Any) -> None:
        cases.append(
            {
                "desc": desc,
                "leaf_index": i,
                "tree_size": n,
                "leaf_hash": lf.hex(),
                "proof": hx(pf),
                "root": rt.hex(),
                "want_error": err,
            }
        )

    for n in SIZES:
        # One seeded index per size keeps the files small; the edges (first and last
        # leaf) are added for the sizes around powers of two.
        indices = sorted({rng.randrange(n), *((0, n - 1) if n in EDGE_SIZES else ())})
        for i in indices:
            good = path(i, ENTRIES[:n])
            lf, rt = leaf(i), root(n)
            tag = f"leaf {i} of {n}"
            case(f"valid: {tag}", i, n, lf, good, rt, False)
            bad = INCLUSION_ERROR
            for k in range(len(good)):
                flipped = [*good[:k], flip(good[k], rng), *good[k + 1 :]]
                case(f"{tag}: element {k} bit-flipped", i, n, lf, flipped, rt, bad)
                if k in (0, len(good) - 1):  # any removal fails on length; two suffice
                    case(f"{tag}: element {k} removed", i, n, lf, good[:k] + good[k + 1 :], rt, bad)
            case(f"{tag}: trailing garbage element", i, n, lf, [*good, GARBAGE], rt, bad)
            case(f"{tag}: preceding garbage element", i, n, lf, [GARBAGE, *good], rt, bad)
            case(f"{tag}: root appended as element", i, n, lf, [*good, rt], rt, bad)
            case(f"{tag}: leaf prepended as element", i, n, lf, [lf, *good], rt, bad)
            for wrong in sorted({i - 1, i + 1, i ^ 2} - {i}):
                case(f"{tag}: wrong index {wrong}", wrong, n, lf, good, rt, bad)
            for wrong in sorted({n * 2, n // 2} - {n}):
                case(f"{tag}: wrong tree size {wrong}", i, wrong, lf, good, rt, bad)
            for other in sorted({n - 1, n + 1, 0} - {n}):
                case(f"{tag}: root of size {other}", i, n, lf, good, root(other), bad)
            other_leaf = leaf(i + 1) if i + 1 <= MAX else leaf(0)
            case(f"{tag}: wrong leaf", i, n, other_leaf, good, rt, bad)
            case(f"{tag}: entry instead of leaf hash", i, n, ENTRIES[i], good, rt, bad)
            case(f"{tag}: empty root", i, n, lf, good, EMPTY_ROOT, bad)
            case(f"{tag}: truncated root", i, n, lf, good, rt[:31], bad)
            if good:
                case(f"{tag}: truncated element", i, n, lf, [good[0][:31], *good[1:]], rt, bad)
                if len(good) > 1 and good[0] != good[1]:
                    swapped = [good[1], good[0], *good[2:]]
                    case(f"{tag}: first elements swapped", i, n, lf, swapped, rt, bad)
    return cases


def consistency_cases(rng: random.Random) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []

    def case(desc: str, m: int, n: int, r1: bytes, r2: bytes, pf: list[bytes], err: Any) -> None:
        cases.append(
            {
                "desc": desc,
                "old_size": m,
                "new_size": n,
                "old_root": r1.hex(),
                "new_root": r2.hex(),
                "proof": hx(pf),
                "want_error": err,
            }
        )

    bad = CONSISTENCY_ERROR
    for n in SIZES:
        # Edge cases: from the empty tree and to the same size, both with empty proofs.
        case(f"valid: 0 -> {n}", 0, n, EMPTY_ROOT, root(n), [], False)
        case(f"valid: {n} -> {n}", n, n, root(n), root(n), [], False)
        case(f"{n} -> {n}: non-empty proof", n, n, root(n), root(n), [root(n)], bad)
        case(f"{n} -> {n}: different roots", n, n, root(n), root(n - 1), [], bad)
        case(f"0 -> {n}: non-empty proof", 0, n, EMPTY_ROOT, root(n), [root(n)], bad)
        case(f"0 -> {n}: old root not empty", 0, n, root(1), root(n), [], bad)
        if n == 1:
            continue
        pow2 = 1 << ((n - 1).bit_length() - 1)
        olds = sorted({pow2, rng.randrange(1, n), *((1, n - 1) if n in EDGE_SIZES else ())})
        for m in olds:
            good = proof(m, ENTRIES[:n])
            r1, r2 = root(m), root(n)
            tag = f"{m} -> {n}"
            case(f"valid: {tag}", m, n, r1, r2, good, False)
            for k in range(len(good)):
                flipped = [*good[:k], flip(good[k], rng), *good[k + 1 :]]
                case(f"{tag}: element {k} bit-flipped", m, n, r1, r2, flipped, bad)
                if k in (0, len(good) - 1):
                    case(f"{tag}: element {k} removed", m, n, r1, r2, good[:k] + good[k + 1 :], bad)
            case(f"{tag}: trailing garbage element", m, n, r1, r2, [*good, GARBAGE], bad)
            case(f"{tag}: preceding garbage element", m, n, r1, r2, [GARBAGE, *good], bad)
            case(f"{tag}: old root prepended as element", m, n, r1, r2, [r1, *good], bad)
            case(f"{tag}: empty proof", m, n, r1, r2, [], bad)
            for wrong in sorted({m - 1, m + 1, m ^ 2} - {m}):
                case(f"{tag}: wrong old size {wrong}", wrong, n, r1, r2, good, bad)
            for wrong in sorted({n * 2, n // 2} - {n}):
                case(f"{tag}: wrong new size {wrong}", m, wrong, r1, r2, good, bad)
            for other in sorted({m - 1, m + 1} - {n}):
                case(f"{tag}: old root of size {other}", m, n, root(other), r2, good, bad)
            for other in sorted({n - 1, n + 1} - {m}):
                case(f"{tag}: new root of size {other}", m, n, r1, root(other), good, bad)
            case(f"{tag}: swapped roots", m, n, r2, r1, good, bad)
            case(f"{tag}: truncated old root", m, n, r1[:31], r2, good, bad)
            case(f"{tag}: truncated new root", m, n, r1, r2[:31], good, bad)
            case(f"{tag}: old size above new size", n, m, r2, r1, good, bad)
    return cases


def write(name: str, doc: dict[str, Any]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    # One case per line: diffs of regenerated vectors stay readable.
    cases = doc.pop("cases")
    head = json.dumps(doc, indent=1)[:-2]
    lines = ",\n  ".join(json.dumps(c) for c in cases)
    text = f'{head},\n "cases": [\n  {lines}\n ]\n}}\n'
    json.loads(text)
    (OUT / name).write_text(text)
    print(f"{OUT / name}: {len(cases)} cases, {len(text)} bytes")


def main() -> None:
    rng = random.Random(9162)
    common = {
        "hash": "SHA-256; leaf = H(0x00 || entry), node = H(0x01 || left || right) (RFC 9162)",
        "generator": "tests/vectors/gen_merkle_vectors.py",
    }
    write(
        "roots.json",
        {
            **common,
            "description": "MTH of the first tree_size entries; entries are hex",
            "entries": [e.hex() for e in ENTRIES[:MAX]],
            "cases": [
                {"desc": f"root of size {n}", "tree_size": n, "root": root(n).hex()}
                for n in [0, *SIZES]
            ],
        },
    )
    write(
        "inclusion.json",
        {
            **common,
            "description": "RFC 9162 2.1.3.2 inclusion proof verification; hashes are hex",
            "cases": inclusion_cases(rng),
        },
    )
    write(
        "consistency.json",
        {
            **common,
            "description": "RFC 9162 2.1.4.2 consistency proof verification; hashes are hex",
            "cases": consistency_cases(rng),
        },
    )


if __name__ == "__main__":
    main()
