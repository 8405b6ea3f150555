"""The committed receipt vectors: each must verify, or fail at its named check."""

import hashlib
import json
from pathlib import Path

import pytest

from chain.trust import TrustFile
from notary.verify import DocumentDigest, verify_receipt
from tests.vectors import gen_receipt_vectors

VECTORS = json.loads(
    (Path(__file__).parents[1] / "vectors" / "receipt" / "receipts.json").read_text("utf-8")
)
TRUST = TrustFile.from_json(VECTORS["trust"])


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["desc"])
def test_vector(case: dict) -> None:  # type: ignore[type-arg]
    doc = bytes.fromhex(case["document_hex"])
    verdict = verify_receipt(
        DocumentDigest(hashlib.sha256(doc).digest(), len(doc)), case["receipt"], TRUST
    )
    assert verdict.valid is case["want_valid"], verdict.checks
    if not case["want_valid"]:
        assert verdict.failures()[0].name == case["want_failed_check"], verdict.checks


def test_vectors_are_what_the_generator_writes() -> None:
    assert gen_receipt_vectors.cases() == VECTORS


def test_receipts_are_small() -> None:
    sizes = [len(c["receipt"].encode()) for c in VECTORS["cases"] if c["want_valid"]]
    assert max(sizes) <= 4096
