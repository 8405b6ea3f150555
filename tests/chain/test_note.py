"""Signed notes: the wire format, strict parsing, signing and verification."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chain.errors import NoteError
from chain.keys import Signer, parse_verifier_key
from chain.note import (
    MAX_LINE_BYTES,
    MAX_SIGNATURES,
    NoteSignature,
    add_signatures,
    format_note,
    parse_note,
    parse_signature_line,
    sign_note,
    signature_line,
    verify_note_signature,
)

# The example of golang.org/x/mod/sumdb/note's package documentation: an
# independent implementation's bytes, to check that ours interoperates.
GO_VERIFIER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_PRIVATE_KEY_DATA = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZS"
    "NXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)

A = Signer.from_seed("a.example/v1", bytes([1]) * 32)
B = Signer.from_seed("b.example/v2", bytes([2]) * 32)
TEXT = "hello\nworld\n"


def test_interoperates_with_go_note_example() -> None:
    name, public_key = parse_verifier_key(GO_VERIFIER_KEY)
    signer = Signer.from_seed("PeterNeumann", base64.b64decode(GO_PRIVATE_KEY_DATA)[1:])
    assert signer.public_key == public_key
    assert signer.verifier_key == GO_VERIFIER_KEY
    # Ed25519 is deterministic: our signature must equal Go's byte for byte.
    assert sign_note(GO_TEXT, signer) == GO_NOTE
    note = parse_note(GO_NOTE)
    assert note.text == GO_TEXT
    assert len(note.signatures) == 1
    assert note.signatures[0].key_hash.hex() == "c74f20a3"
    assert verify_note_signature(note.text, note.signatures[0], name, public_key)


def test_sign_parse_verify_round_trip() -> None:
    note = sign_note(TEXT, A)
    assert note.startswith(TEXT + "\n— a.example/v1 ")
    assert note.endswith("\n")
    parsed = parse_note(note)
    assert parsed.text == TEXT
    (sig,) = parsed.signatures
    assert sig.name == A.name
    assert sig.key_hash == A.key_hash
    assert verify_note_signature(TEXT, sig, A.name, A.public_key)
    assert not verify_note_signature(TEXT, sig, B.name, B.public_key)
    assert not verify_note_signature("hello\nworlD\n", sig, A.name, A.public_key)
    assert parsed.render() == note
    assert parse_note(note.encode()) == parsed


def test_signature_is_over_text_bytes_including_final_newline() -> None:
    sig = parse_signature_line(signature_line(TEXT, A))
    assert A.sign(TEXT.encode()) == sig.signature
    assert not verify_note_signature(TEXT[:-1] + " \n", sig, A.name, A.public_key)


def test_text_may_contain_blank_lines_split_at_last() -> None:
    text = "a\n\nb\n"
    note = sign_note(text, A)
    parsed = parse_note(note)
    assert parsed.text == text
    assert verify_note_signature(text, parsed.signatures[0], A.name, A.public_key)


def test_add_signatures_appends_and_deduplicates() -> None:
    note = sign_note(TEXT, A)
    line_b = signature_line(TEXT, B)
    both = add_signatures(note, [line_b, line_b, signature_line(TEXT, A)])
    parsed = parse_note(both)
    assert [s.name for s in parsed.signatures] == [A.name, B.name]
    with pytest.raises(NoteError):
        add_signatures(note, ["— bad"])


def test_unknown_signatures_are_preserved() -> None:
    # A signature of another type (not 64 bytes) by an unknown key is still well formed.
    foreign = NoteSignature(name="witness.example", key_hash=b"\x01\x02\x03\x04", signature=b"x")
    note = format_note(TEXT, [foreign, parse_signature_line(signature_line(TEXT, A))])
    parsed = parse_note(note)
    assert parsed.signatures[0] == foreign
    assert parsed.render() == note


def _good() -> str:
    return sign_note(TEXT, A)


def _sig_b64() -> str:
    return _good().rsplit(" ", 1)[1].rstrip("\n")


@pytest.mark.parametrize(
    ("note", "reason"),
    [
        ("", "newline"),
        (TEXT, "blank line"),
        (_good()[:-1], "newline"),  # missing trailing newline
        (TEXT + "— a.example/v1 " + _sig_b64() + "\n", "blank line"),  # no separator
        (TEXT + "\n", "signature"),  # blank line but no signature
        (_good().replace("—", "-"), "em dash"),
        (_good().replace("— ", "—"), "em dash"),
        (_good().replace("— a.example/v1 ", "— a.example/v1  "), "name"),
        (_good().replace("— a.example/v1 ", "—  a.example/v1 "), "name"),
        (_good().replace("a.example/v1", "a+example"), "+"),
        (_good()[:-2] + "\n", "base64"),  # damaged base64
        (_good().replace(_sig_b64(), _sig_b64().rstrip("=")), "base64"),
        (_good().replace(_sig_b64(), "AAAA"), "short"),
        (_good().replace(_sig_b64(), _sig_b64() + " x"), "<name> <base64>"),
        (_good().replace("hello", "hel\tlo"), "control"),
        (_good().replace("hello", "hel\rlo"), "control"),
        (_good().replace("hello", "hel\x00lo"), "control"),
        (_good() + "\n", "no signature"),  # trailing blank line
        (_good() + "garbage\n", "em dash"),
        ("x" * (MAX_LINE_BYTES + 1) + "\n\n" + signature_line(TEXT, A), "longer"),
    ],
)
def test_strict_parse_rejects(note: str, reason: str) -> None:
    with pytest.raises(NoteError) as info:
        parse_note(note)
    assert reason in str(info.value)


def test_non_utf8_is_rejected() -> None:
    raw = _good().encode().replace(b"hello", b"hel\xfflo")
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note(raw)
    with pytest.raises(NoteError, match="UTF-8"):
        parse_note("hel\ud800lo\n\n" + signature_line(TEXT, A))


def test_too_many_signatures() -> None:
    signers = [Signer.from_seed(f"s{i}", i.to_bytes(32, "big")) for i in range(MAX_SIGNATURES + 1)]
    lines = [signature_line(TEXT, s) for s in signers]
    ok = TEXT + "\n" + "".join(lines[:MAX_SIGNATURES])
    assert len(parse_note(ok).signatures) == MAX_SIGNATURES
    with pytest.raises(NoteError, match="more than"):
        parse_note(TEXT + "\n" + "".join(lines))
    with pytest.raises(NoteError, match="more than"):
        format_note(TEXT, [parse_signature_line(x) for x in lines])


def test_lenient_parse_sets_malformed_lines_aside() -> None:
    note = _good() + "— broken line\n" + "garbage\n" + signature_line(TEXT, B)
    with pytest.raises(NoteError):
        parse_note(note)
    parsed = parse_note(note, strict=False)
    assert [s.name for s in parsed.signatures] == [A.name, B.name]
    assert parsed.malformed == ("— broken line", "garbage")
    # The envelope is still strict in lenient mode.
    with pytest.raises(NoteError):
        parse_note(note[:-1], strict=False)
    with pytest.raises(NoteError):
        parse_note(TEXT + "\n", strict=False)


def test_sign_rejects_bad_text() -> None:
    for text in ["", "no newline", "tab\there\n", "x" * (MAX_LINE_BYTES + 1) + "\n"]:
        with pytest.raises(NoteError):
            sign_note(text, A)
    with pytest.raises(NoteError):
        format_note(TEXT, [])


_text_lines = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=30
)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(_text_lines, min_size=1, max_size=5), st.integers(1, 3))
def test_round_trip_property(lines: list[str], count: int) -> None:
    text = "\n".join(lines) + "\n"
    signers = [A, B, Signer.from_seed("c", bytes(32))][:count]
    note = format_note(text, [parse_signature_line(signature_line(text, s)) for s in signers])
    parsed = parse_note(note)
    assert parsed.text == text
    for sig, signer in zip(parsed.signatures, signers, strict=True):
        assert verify_note_signature(text, sig, signer.name, signer.public_key)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(st.data())
def test_mutated_note_never_verifies_other_text(data: st.DataObject) -> None:
    raw = bytearray(sign_note(TEXT, A).encode())
    index = data.draw(st.integers(0, len(raw) - 1))
    raw[index] = data.draw(st.integers(0, 255).filter(lambda b: b != raw[index]))
    for strict in (True, False):
        try:
            note = parse_note(bytes(raw), strict=strict)
        except NoteError:
            continue
        for sig in note.signatures:
            if verify_note_signature(note.text, sig, A.name, A.public_key):
                assert note.text == TEXT
