"""Checkpoints: body format, signing, and what counts toward the commit threshold."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.checkpoint import (
    MAX_TREE_SIZE,
    Checkpoint,
    SignatureStatus,
    assemble_checkpoint,
    checkpoint_signature,
    inspect_checkpoint,
    parse_checkpoint,
    sign_checkpoint,
    verify_checkpoint,
    verify_checkpoint_signature,
)
from chain.errors import CheckpointError, CheckpointOriginError, NoteError, QuorumNotMetError
from chain.keys import Signer
from chain.note import parse_note
from chain.trust import TrustFile, Validator, make_genesis

CHAIN = "notary.example/chain-1"
SIGNERS = [Signer.from_seed(f"v{i}.notary.example", bytes([i + 1]) * 32) for i in range(4)]
TRUST = make_genesis(CHAIN, [Validator(s.name, s.public_key) for s in SIGNERS])
ROOT = hashlib.sha256(b"root").digest()
CP = Checkpoint(CHAIN, 42, ROOT)
URLSAFE = base64.urlsafe_b64encode(b"\xff" * 32).decode()
OUTSIDER = Signer.from_seed("v9.notary.example", bytes([99]) * 32)


def _note(*signers: Signer, cp: Checkpoint = CP) -> str:
    return assemble_checkpoint(cp, [sign_checkpoint(cp, s) for s in signers])


def test_body_format() -> None:
    assert CP.body() == f"{CHAIN}\n42\n{base64.b64encode(ROOT).decode()}\n"
    assert Checkpoint(CHAIN, 0, ROOT, ("ext one",)).body().endswith("=\next one\n")
    assert parse_checkpoint(CP.body()) == CP


@pytest.mark.parametrize(
    "body",
    [
        f"{CHAIN}\n42\n{base64.b64encode(ROOT).decode()}",  # no final newline
        f"{CHAIN}\n42\n",
        f"{CHAIN}\n042\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n+42\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n-1\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n4_2\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n 42\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n\u0664\u0662\n{base64.b64encode(ROOT).decode()}\n",  # Arabic-Indic digits
        f"{CHAIN}\n{MAX_TREE_SIZE + 1}\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n\n{base64.b64encode(ROOT).decode()}\n",
        f"{CHAIN}\n42\n{base64.b64encode(ROOT[:31]).decode()}\n",
        f"{CHAIN}\n42\n{base64.b64encode(ROOT).decode().rstrip('=')}\n",
        f"{CHAIN}\n42\n{URLSAFE}\n",
        f"{CHAIN}\n42\n{base64.b64encode(ROOT).decode()}\n\n",  # empty extension line
        f"\n42\n{base64.b64encode(ROOT).decode()}\n",
        f"bad origin\n42\n{base64.b64encode(ROOT).decode()}\n",
    ],
)
def test_parse_checkpoint_is_strict(body: str) -> None:
    with pytest.raises(NoteError):
        parse_checkpoint(body)


def test_size_bounds() -> None:
    top = Checkpoint(CHAIN, MAX_TREE_SIZE, ROOT)
    assert parse_checkpoint(top.body()).size == MAX_TREE_SIZE
    for bad in (-1, MAX_TREE_SIZE + 1):
        with pytest.raises(NoteError):
            Checkpoint(CHAIN, bad, ROOT)
    with pytest.raises(NoteError):
        Checkpoint(CHAIN, 1, b"short")


def test_committed_with_threshold_signers() -> None:
    verified = verify_checkpoint(_note(*SIGNERS[:3]), TRUST)
    assert verified.checkpoint == CP
    assert verified.signers == tuple(s.name for s in SIGNERS[:3])
    all_four = verify_checkpoint(_note(*reversed(SIGNERS)), TRUST)
    assert set(all_four.signers) == {s.name for s in SIGNERS}


def test_below_threshold_names_count_and_signers() -> None:
    with pytest.raises(QuorumNotMetError) as info:
        verify_checkpoint(_note(SIGNERS[0], SIGNERS[2]), TRUST)
    err = info.value
    assert isinstance(err, CheckpointError)
    assert (err.valid, err.needed) == (2, 3)
    assert err.signers == (SIGNERS[0].name, SIGNERS[2].name)
    assert "2 valid" in str(err) and "3 needed" in str(err)
    assert SIGNERS[0].name in str(err) and SIGNERS[2].name in str(err)


def test_duplicate_signature_lines_count_once() -> None:
    line = sign_checkpoint(CP, SIGNERS[0])
    # assemble_checkpoint drops identical lines, so build the note by hand.
    note = CP.body() + "\n" + line + line + sign_checkpoint(CP, SIGNERS[1])
    report = inspect_checkpoint(note, TRUST)
    assert [c.status for c in report.checks] == [
        SignatureStatus.VALID,
        SignatureStatus.DUPLICATE,
        SignatureStatus.VALID,
    ]
    with pytest.raises(QuorumNotMetError, match="2 valid"):
        verify_checkpoint(note, TRUST)


def test_forged_signature_is_invalid_and_not_counted() -> None:
    good = parse_note(_note(*SIGNERS[:3]))
    forged = bytearray(good.signatures[1].signature)
    forged[10] ^= 0x01
    sig = good.signatures[1]
    line = type(sig)(sig.name, sig.key_hash, bytes(forged)).line
    note = CP.body() + "\n" + good.signatures[0].line + line + good.signatures[2].line
    report = inspect_checkpoint(note, TRUST)
    assert [c.status for c in report.checks] == [
        SignatureStatus.VALID,
        SignatureStatus.INVALID,
        SignatureStatus.VALID,
    ]
    assert report.validator_status(SIGNERS[1].name) is SignatureStatus.INVALID
    assert report.validator_status(SIGNERS[3].name) is None
    with pytest.raises(QuorumNotMetError):
        verify_checkpoint(note, TRUST)
    # Adding the real signature later makes it committed: the forgery is ignored.
    fixed = note + sign_checkpoint(CP, SIGNERS[1])
    signers = verify_checkpoint(fixed, TRUST).signers
    assert signers == (SIGNERS[0].name, SIGNERS[2].name, SIGNERS[1].name)  # note order


def test_outsider_and_impostor_signatures_are_unknown() -> None:
    # An outsider key; and a key that claims a validator's name but not its key hash.
    impostor = Signer.from_seed(SIGNERS[3].name, bytes([77]) * 32)
    note = _note(SIGNERS[0], SIGNERS[1], OUTSIDER, impostor)
    report = inspect_checkpoint(note, TRUST)
    assert [c.status for c in report.checks] == [
        SignatureStatus.VALID,
        SignatureStatus.VALID,
        SignatureStatus.UNKNOWN,
        SignatureStatus.UNKNOWN,
    ]
    assert not report.committed
    with pytest.raises(QuorumNotMetError):
        verify_checkpoint(note, TRUST)


def test_impostor_with_matching_key_hash_does_not_verify() -> None:
    # Same name and key hash as a validator, but the signature is by another key.
    sig = checkpoint_signature(CP, OUTSIDER)
    line = type(sig)(SIGNERS[2].name, SIGNERS[2].key_hash, sig.signature).line
    note = _note(SIGNERS[0], SIGNERS[1]) + line
    report = inspect_checkpoint(note, TRUST)
    assert report.checks[-1].status is SignatureStatus.INVALID
    with pytest.raises(QuorumNotMetError):
        verify_checkpoint(note, TRUST)


def test_signature_over_another_body_is_invalid() -> None:
    other = Checkpoint(CHAIN, 43, ROOT)
    note = _note(SIGNERS[0], SIGNERS[1]) + sign_checkpoint(other, SIGNERS[2])
    with pytest.raises(QuorumNotMetError, match="2 valid"):
        verify_checkpoint(note, TRUST)
    assert not verify_checkpoint_signature(
        CP, sign_checkpoint(other, SIGNERS[2]), TRUST.validators[2]
    )
    assert verify_checkpoint_signature(CP, sign_checkpoint(CP, SIGNERS[2]), TRUST.validators[2])
    assert not verify_checkpoint_signature(CP, sign_checkpoint(CP, SIGNERS[2]), TRUST.validators[1])
    assert not verify_checkpoint_signature(CP, "— garbage", TRUST.validators[1])


def test_wrong_origin() -> None:
    cp = Checkpoint("other.example/chain", 42, ROOT)
    with pytest.raises(CheckpointOriginError, match="origin"):
        verify_checkpoint(_note(*SIGNERS, cp=cp), TRUST)


def test_malformed_lines_are_ignored_not_fatal() -> None:
    note = _note(*SIGNERS[:3]) + "— garbage\n" + "not a signature\n"
    report = inspect_checkpoint(note, TRUST)
    statuses = [c.status for c in report.checks]
    assert statuses.count(SignatureStatus.MALFORMED) == 2
    assert verify_checkpoint(note, TRUST).signers == tuple(s.name for s in SIGNERS[:3])
    # ... but they never count either.
    two = _note(*SIGNERS[:2]) + "— garbage\n"
    with pytest.raises(QuorumNotMetError):
        verify_checkpoint(two, TRUST)


def test_malformed_envelope_or_body_is_a_note_error() -> None:
    good = _note(*SIGNERS[:3])
    for bad in (good[:-1], good.replace("\n\n", "\n"), good.replace("\n42\n", "\n042\n")):
        with pytest.raises(NoteError):
            verify_checkpoint(bad, TRUST)


def test_assemble_rejects_malformed_lines() -> None:
    with pytest.raises(NoteError):
        assemble_checkpoint(CP, ["— x"])
    with pytest.raises(NoteError):
        assemble_checkpoint(CP, [])


@settings(max_examples=40, deadline=None, derandomize=True)
@given(
    st.sets(st.integers(0, 3)),
    st.lists(st.integers(0, 3), max_size=4),
    st.integers(0, MAX_TREE_SIZE),
)
def test_count_is_distinct_valid_signers(signed: set[int], dups: list[int], size: int) -> None:
    cp = Checkpoint(CHAIN, size, ROOT)
    lines = [sign_checkpoint(cp, SIGNERS[i]) for i in sorted(signed)]
    lines += [sign_checkpoint(cp, SIGNERS[i]) for i in dups]
    lines.append(sign_checkpoint(cp, OUTSIDER))
    note = cp.body() + "\n" + "".join(lines)
    distinct = {SIGNERS[i].name for i in signed | set(dups)}
    report = inspect_checkpoint(note, TRUST)
    assert set(report.signers) == distinct
    assert report.committed == (len(distinct) >= 3)
    if len(distinct) >= 3:
        assert verify_checkpoint(note, TRUST).checkpoint == cp
    else:
        with pytest.raises(QuorumNotMetError):
            verify_checkpoint(note, TRUST)


# --- test vectors (tests/vectors/checkpoint, generated by gen_checkpoint_vectors.py)

VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "checkpoint"
_ERRORS: dict[str, type[Exception]] = {
    "NoteError": NoteError,
    "CheckpointOriginError": CheckpointOriginError,
    "QuorumNotMetError": QuorumNotMetError,
}


def _vector_cases() -> list[dict[str, Any]]:
    data = json.loads((VECTORS / "checkpoints.json").read_text(encoding="utf-8"))
    cases: list[dict[str, Any]] = data["cases"]
    return cases


def test_vectors_are_what_the_generator_writes() -> None:
    from tests.vectors import gen_checkpoint_vectors as gen

    for name, text in gen.documents().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, f"regenerate {name}"


def test_vector_keys_derive_from_seeds() -> None:
    keys = json.loads((VECTORS / "keys.json").read_text(encoding="utf-8"))["keys"]
    trust = TrustFile.load(VECTORS / "trust.json")
    for entry in keys:
        signer = Signer.from_seed(entry["name"], bytes.fromhex(entry["seed_hex"]))
        assert base64.b64encode(signer.public_key).decode() == entry["public_key"]
        digest = hashlib.sha256(entry["name"].encode() + b"\n\x01" + signer.public_key).digest()
        assert digest[:4].hex() == entry["key_hash_hex"]
        assert signer.verifier_key == entry["verifier_key"]
        assert (entry["verifier_key"] in trust.verifier_keys()) == entry["in_trust_file"]


def test_vectors_cover_every_kind_of_probe() -> None:
    cases = _vector_cases()
    statuses = {s for c in cases for s in (c["want_statuses"] or [])}
    assert statuses == {s.value for s in SignatureStatus}
    errors = {c["want_error"] for c in cases}
    assert errors == {None, *_ERRORS}


@pytest.mark.parametrize("case", _vector_cases(), ids=lambda c: str(c["desc"]))
def test_vector(case: dict[str, Any]) -> None:
    trust = TrustFile.load(VECTORS / "trust.json")
    note = case["note"]
    want_error = case["want_error"]
    if want_error is None:
        verified = verify_checkpoint(note, trust)
        assert list(verified.signers) == case["want_signers"]
        assert verify_checkpoint(note.encode("utf-8"), trust) == verified
    else:
        with pytest.raises(_ERRORS[want_error]) as info:
            verify_checkpoint(note, trust)
        if want_error == "QuorumNotMetError":
            assert isinstance(info.value, QuorumNotMetError)
            assert list(info.value.signers) == case["want_signers"]
            assert info.value.needed == trust.threshold
    if case["want_statuses"] is not None:
        report = inspect_checkpoint(note, trust)
        assert [c.status.value for c in report.checks] == case["want_statuses"]
        assert list(report.signers) == case["want_signers"]
        assert report.committed == (want_error is None)
