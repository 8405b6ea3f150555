"""The committed RFC 9162 vectors (tests/vectors/merkle/): every verdict as recorded.

Valid cases must verify, every probe must raise the recorded error class. The vectors
come from the naive reference via tests/vectors/gen_merkle_vectors.py, not from the code
under test.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

from chain import errors, merkle

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "merkle"


@cache
def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((VECTORS / name).read_text())
    return doc


def unhex(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(v) for v in values]


def outcome(call: Any) -> str | bool:
    """False when ``call`` succeeds, else the name of the ProofError class it raised."""
    try:
        call()
    except errors.ProofError as exc:
        return type(exc).__name__
    return False


def test_vector_files_are_not_trivial() -> None:
    for name, kind in [("inclusion.json", "leaf_index"), ("consistency.json", "old_size")]:
        cases = load(name)["cases"]
        valid = [c for c in cases if c["want_error"] is False]
        assert len(valid) > 100 and len(cases) > 10 * len(valid) / 2, name
        assert all(kind in c for c in cases)
        descs = " ".join(c["desc"] for c in cases)
        for probe in ["bit-flipped", "removed", "trailing garbage", "preceding garbage"]:
            assert probe in descs, (name, probe)


def test_roots() -> None:
    doc = load("roots.json")
    leaves = [merkle.leaf_hash(e) for e in unhex(doc["entries"])]
    for case in doc["cases"]:
        n = case["tree_size"]
        assert merkle.root_hash(leaves[:n]).hex() == case["root"], case["desc"]


def test_inclusion_vectors() -> None:
    failures = []
    for case in load("inclusion.json")["cases"]:
        proof = unhex(case["proof"])
        got = outcome(
            lambda c=case, p=proof: merkle.verify_inclusion(
                c["leaf_index"],
                c["tree_size"],
                bytes.fromhex(c["leaf_hash"]),
                p,
                bytes.fromhex(c["root"]),
            )
        )
        if got != case["want_error"]:
            failures.append(f"{case['desc']}: got {got!r}, want {case['want_error']!r}")
    assert not failures, "\n".join(failures[:20])


def test_consistency_vectors() -> None:
    failures = []
    for case in load("consistency.json")["cases"]:
        proof = unhex(case["proof"])
        got = outcome(
            lambda c=case, p=proof: merkle.verify_consistency(
                c["old_size"],
                c["new_size"],
                bytes.fromhex(c["old_root"]),
                bytes.fromhex(c["new_root"]),
                p,
            )
        )
        if got != case["want_error"]:
            failures.append(f"{case['desc']}: got {got!r}, want {case['want_error']!r}")
    assert not failures, "\n".join(failures[:20])


def test_valid_vector_proofs_are_what_we_generate() -> None:
    leaves = [merkle.leaf_hash(e) for e in unhex(load("roots.json")["entries"])]
    for case in load("inclusion.json")["cases"]:
        if case["want_error"] is False:
            i, n = case["leaf_index"], case["tree_size"]
            assert merkle.inclusion_proof(i, leaves[:n]) == unhex(case["proof"]), case["desc"]
    for case in load("consistency.json")["cases"]:
        if case["want_error"] is False:
            m, n = case["old_size"], case["new_size"]
            assert merkle.consistency_proof(m, leaves[:n]) == unhex(case["proof"]), case["desc"]


def test_vectors_are_regenerated_identically(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_merkle_vectors", VECTORS.parent / "gen_merkle_vectors.py"
    )
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.OUT = tmp_path
    gen.main()
    for name in ["roots.json", "inclusion.json", "consistency.json"]:
        assert (tmp_path / name).read_bytes() == (VECTORS / name).read_bytes(), name
