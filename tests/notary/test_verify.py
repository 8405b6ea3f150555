"""Offline verification: a valid receipt passes; every tampered case fails for its reason."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from pathlib import Path

import pytest

from chain.checkpoint import Checkpoint, assemble_checkpoint, sign_checkpoint
from chain.keys import Signer
from chain.merkle import inclusion_proof
from notary.log_entry import log_segment_entry
from notary.verify import (
    DocumentDigest,
    Outcome,
    VerificationError,
    verify_file,
    verify_receipt,
)
from tests.notary import receipt_factory as rf


def _digest(data: bytes) -> DocumentDigest:
    return DocumentDigest(hashlib.sha256(data).digest(), len(data))


def _failed(verdict, name: str) -> str:  # type: ignore[no-untyped-def]
    assert not verdict.valid
    first = verdict.failures()[0]
    assert first.name == name, verdict.checks
    return first.detail


def test_valid_receipt_passes_every_check(tmp_path: Path) -> None:
    fx = rf.build()
    doc = tmp_path / "filing.pdf"
    doc.write_bytes(fx.document)
    verdict = verify_file(doc, fx.receipt.dumps(), fx.trust)
    assert verdict.valid, verdict.checks
    names = [c.name for c in verdict.checks]
    for want in ("receipt", "chain_id", "document", "entry", "commitment", "checkpoint"):
        assert want in names
    assert names[-2:] == ["threshold", "inclusion"]
    signed = {c.name: c.detail for c in verdict.checks if c.name.startswith("signature:")}
    assert signed["signature:validator-0"] == "valid signature"
    assert signed["signature:validator-3"] == "no signature"
    verdict.raise_for_failure()


def test_digest_alone_verifies() -> None:
    fx = rf.build()
    d = DocumentDigest.from_hex(hashlib.sha256(fx.document).hexdigest())
    assert verify_receipt(d, fx.receipt, fx.trust).valid


def test_edited_file_fails_on_document() -> None:
    fx = rf.build()
    edited = bytearray(fx.document)
    edited[3] ^= 0x01
    verdict = verify_receipt(_digest(bytes(edited)), fx.receipt, fx.trust)
    assert "receipt says" in _failed(verdict, "document")
    with pytest.raises(VerificationError) as e:
        verdict.raise_for_failure()
    assert e.value.check == "document"


def test_appended_byte_fails_on_size_or_digest() -> None:
    fx = rf.build()
    assert not verify_receipt(_digest(fx.document + b"\n"), fx.receipt, fx.trust).valid


@pytest.mark.parametrize(
    ("field", "value", "check"),
    [
        ("salt", "00" * 32, "commitment"),
        ("leaf_index", 5, "inclusion"),
        ("tree_size", 12, "checkpoint"),
        ("chain_id", "other.chain/x", "chain_id"),
        ("version", 2, "receipt"),
        ("format", "something-else", "receipt"),
    ],
)
def test_edited_receipt_field_fails(field: str, value: object, check: str) -> None:
    fx = rf.build()
    obj = fx.receipt.to_json()
    obj[field] = value
    verdict = verify_receipt(_digest(fx.document), json.dumps(obj), fx.trust)
    _failed(verdict, check)


def test_edited_document_size_and_entry() -> None:
    fx = rf.build()
    obj = fx.receipt.to_json()
    obj["document"]["size"] += 1
    _failed(verify_receipt(_digest(fx.document), json.dumps(obj), fx.trust), "document")
    obj = fx.receipt.to_json()
    obj["entry"] = obj["entry"].replace('"v":1', '"v":1 ')
    _failed(verify_receipt(_digest(fx.document), json.dumps(obj), fx.trust), "entry")


def test_swapped_proof_fails_inclusion() -> None:
    fx = rf.build()
    other = tuple(inclusion_proof(7, list(fx.leaves)))
    bad = replace(fx.receipt, inclusion_proof=other)
    detail = _failed(verify_receipt(_digest(fx.document), bad, fx.trust), "inclusion")
    assert "expected root" in detail and "calculated" in detail


@pytest.mark.parametrize("i", range(4))
def test_each_proof_element_flipped_fails(i: int) -> None:
    fx = rf.build()
    proof = list(fx.receipt.inclusion_proof)
    proof[i] = bytes([proof[i][0] ^ 0x80]) + proof[i][1:]
    bad = replace(fx.receipt, inclusion_proof=tuple(proof))
    _failed(verify_receipt(_digest(fx.document), bad, fx.trust), "inclusion")


def test_forged_signature_is_not_counted() -> None:
    fx = rf.build()
    body, _, sigs = fx.receipt.checkpoint.partition("\n\n")
    lines = sigs.splitlines()
    name, b64 = lines[1].rsplit(" ", 1)
    raw = bytearray(base64.b64decode(b64))
    raw[10] ^= 0x01
    lines[1] = f"{name} {base64.b64encode(bytes(raw)).decode()}"
    note = body + "\n\n" + "\n".join(lines) + "\n"
    verdict = verify_receipt(_digest(fx.document), replace(fx.receipt, checkpoint=note), fx.trust)
    assert "2 valid signatures" in _failed(verdict, "threshold")
    statuses = {c.name: c.detail for c in verdict.checks if c.outcome is Outcome.INFO}
    assert "does not verify" in statuses["signature:validator-1"]


def test_duplicated_signatures_count_once() -> None:
    fx = rf.build(sign_with=(0,))
    body, _, sig = fx.receipt.checkpoint.partition("\n\n")
    note = body + "\n\n" + sig * 3
    verdict = verify_receipt(_digest(fx.document), replace(fx.receipt, checkpoint=note), fx.trust)
    assert "1 valid signatures" in _failed(verdict, "threshold")


def test_too_few_validators() -> None:
    fx = rf.build(sign_with=(0, 3))
    assert "2 valid" in _failed(
        verify_receipt(_digest(fx.document), fx.receipt, fx.trust), "threshold"
    )


def test_signatures_of_untrusted_validators_are_ignored() -> None:
    fx = rf.build(sign_with=(0,))
    # A trusted validator's name with another key, and keys the trust file does not know.
    name_thief = Signer.from_seed("validator-1", bytes(32))
    impostors = rf.signers(3, prefix="impostor")
    cp = Checkpoint(rf.CHAIN_ID, fx.receipt.tree_size, _root(fx))
    lines = [sign_checkpoint(cp, fx.keys[0]), sign_checkpoint(cp, name_thief)]
    lines += [sign_checkpoint(cp, k) for k in impostors]
    note = assemble_checkpoint(cp, lines)
    verdict = verify_receipt(_digest(fx.document), replace(fx.receipt, checkpoint=note), fx.trust)
    assert "1 valid" in _failed(verdict, "threshold")


def test_receipt_from_another_chain() -> None:
    fx = rf.build(chain_id="other.chain/prod")
    trusted = rf.build()
    verdict = verify_receipt(_digest(fx.document), fx.receipt, trusted.trust)
    _failed(verdict, "chain_id")
    assert any(c.name == "checkpoint" and c.outcome is Outcome.FAIL for c in verdict.checks)


@pytest.mark.parametrize(
    "text", [b"", b"not json", b"[]", b"\xff\xfe", b'{"format":"notary-receipt","version":1}']
)
def test_unreadable_receipt_fails_first_check_and_skips_the_rest(text: bytes) -> None:
    fx = rf.build()
    verdict = verify_receipt(_digest(fx.document), text, fx.trust)
    assert verdict.checks[0].name == "receipt"
    assert verdict.checks[0].outcome is Outcome.FAIL
    assert all(c.outcome is Outcome.SKIPPED for c in verdict.checks[1:])


def _root(fx: rf.Fixture) -> bytes:
    from chain.merkle import root_hash

    return root_hash(list(fx.leaves))


def _segment_entry(salt: bytes, digest: bytes, *, seq: int = 3) -> bytes:
    return log_segment_entry(
        stream="d7fcae4c2f3bb6ed2798971a64108cc6",
        seq=seq,
        start=4096 * seq,
        end=4096 * (seq + 1),
        prev=hashlib.sha256(b"previous segment").digest(),
        salt=salt,
        sha256=digest,
    ).to_bytes()


def test_receipt_of_a_log_segment_verifies() -> None:
    fx = rf.build(b"line 1\nline 2\n" * 100, entry_for=_segment_entry)
    verdict = verify_receipt(_digest(fx.document), fx.receipt, fx.trust)
    assert verdict.valid, verdict.checks
    entry = next(c for c in verdict.checks if c.name == "entry")
    assert "log segment entry" in entry.detail and "seq 3" in entry.detail
    other = _digest(fx.document + b"line 3\n")
    assert _failed(verify_receipt(other, fx.receipt, fx.trust), "document")


def test_log_segment_entry_committing_to_other_bytes_fails_on_commitment() -> None:
    fx = rf.build(
        b"segment", entry_for=lambda s, d: _segment_entry(s, hashlib.sha256(b"other").digest())
    )
    assert "entry holds" in _failed(
        verify_receipt(_digest(fx.document), fx.receipt, fx.trust), "commitment"
    )
