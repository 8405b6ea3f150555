"""Signed notes (C2SP signed-note) with Ed25519 signatures: sign, parse, verify.

A signed note is a text ending in a newline, a blank line, then one or more
signature lines ``"— " name " " base64(key hash || signature) "\\n"``; see
``docs/checkpoint-format.md`` for the byte-level format and the limits below.

Parsing is strict about the envelope (UTF-8, no control characters, final newline,
blank separator line, limits) and, by default, about each signature line. With
``strict=False`` a malformed signature line is kept aside in ``Note.malformed``
instead of failing the whole note, so that one garbage line added by anyone
cannot make an otherwise committed checkpoint unusable. Signatures by unknown
keys are always kept (``Note.signatures``); callers decide which keys they trust.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from chain.errors import KeyNameError, NoteError
from chain.keys import (
    KEY_HASH_SIZE,
    Signer,
    check_key_name,
    decode_b64,
    is_valid_key_name,
    key_hash,
    parse_verifier_key,
    verifier_key,
    verify_signature,
)

__all__ = [
    "MAX_LINE_BYTES",
    "MAX_NOTE_BYTES",
    "MAX_SIGNATURES",
    "SIGNATURE_PREFIX",
    "Note",
    "NoteSignature",
    "SignatureVerifier",
    "add_signatures",
    "check_note_text",
    "format_note",
    "key_hash",
    "note_signature",
    "parse_note",
    "parse_signature_line",
    "parse_verifier_key",
    "sign_note",
    "signature_line",
    "verifier_key",
    "verify_note_signature",
]

# The em dash U+2014 and a space open every signature line.
SIGNATURE_PREFIX = "\u2014 "
# The spec asks verifiers to accept at least 16; validator sets stay far below 100.
MAX_SIGNATURES = 100
# Room for a 256-byte name and a post-quantum signature (~5 kB) in base64.
MAX_LINE_BYTES = 8192
MAX_NOTE_BYTES = 1 << 20

_FORBIDDEN_CONTROL = re.compile("[\x00-\x09\x0b-\x1f]")

SignatureVerifier = Callable[[bytes, bytes, bytes], bool]
"""``verify(public_key, message, signature) -> bool``, never raising."""


@dataclass(frozen=True)
class NoteSignature:
    """One well-formed signature line: key name, 4-byte key hash, signature bytes."""

    name: str
    key_hash: bytes
    signature: bytes

    @property
    def line(self) -> str:
        """The signature line, including its final newline."""
        encoded = base64.b64encode(self.key_hash + self.signature).decode("ascii")
        return f"{SIGNATURE_PREFIX}{self.name} {encoded}\n"


@dataclass(frozen=True)
class Note:
    """A parsed note: its text (with final newline), signatures, malformed lines.

    ``malformed`` holds signature-block lines (without newline) that could not be
    parsed; it is always empty after a strict parse.
    """

    text: str
    signatures: tuple[NoteSignature, ...]
    malformed: tuple[str, ...] = ()

    def render(self) -> str:
        """The note in wire form with its well-formed signatures (malformed ones dropped)."""
        return format_note(self.text, self.signatures)


def check_note_text(text: str) -> None:
    """Raise :class:`NoteError` unless ``text`` can be the text of a signed note.

    It must be non-empty valid UTF-8 ending in a newline, without ASCII control
    characters other than newline, with lines of at most ``MAX_LINE_BYTES`` bytes.
    """
    if not isinstance(text, str) or not text:
        raise NoteError("note text is empty")
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        raise NoteError("note text is not valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise NoteError(f"note text is longer than {MAX_NOTE_BYTES} bytes")
    if not text.endswith("\n"):
        raise NoteError("note text does not end in a newline")
    match = _FORBIDDEN_CONTROL.search(text)
    if match:
        raise NoteError(f"note contains control character {ord(match.group()):#04x}")
    _check_line_lengths(text, size)


def _check_line_lengths(text: str, size: int) -> None:
    """Raise unless every line of ``text`` (``size`` UTF-8 bytes in all) fits a line."""
    if size <= MAX_LINE_BYTES:
        return  # no line can be longer than the whole text
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        if len(line.encode("utf-8")) > MAX_LINE_BYTES:
            raise NoteError(f"note text line {number} is longer than {MAX_LINE_BYTES} bytes")


def parse_signature_line(line: str) -> NoteSignature:
    """Parse one signature line, with or without its final newline.

    Raises :class:`NoteError` if it lacks the em-dash prefix, has a bad key name,
    is not ``prefix name SP base64``, or the base64 is not canonical standard base64
    of at least 5 bytes (4-byte key hash and a signature).
    """
    if line.endswith("\n"):
        line = line[:-1]
    if "\n" in line:
        raise NoteError("a signature line must be a single line")
    if len(line.encode("utf-8", errors="surrogatepass")) > MAX_LINE_BYTES:
        raise NoteError(f"signature line is longer than {MAX_LINE_BYTES} bytes")
    if not line.startswith(SIGNATURE_PREFIX):
        raise NoteError("signature line does not start with an em dash and a space")
    fields = line[len(SIGNATURE_PREFIX) :].split(" ")
    if len(fields) != 2:
        raise NoteError("signature line is not '— <name> <base64>'")
    name, encoded = fields
    try:
        check_key_name(name)
    except KeyNameError as e:
        raise NoteError(f"signature line: {e}") from None
    raw = decode_b64(encoded)
    if raw is None:
        raise NoteError(f"signature line of {name!r}: signature is not canonical base64")
    if len(raw) <= KEY_HASH_SIZE:
        raise NoteError(f"signature line of {name!r}: signature is too short")
    return NoteSignature(name=name, key_hash=raw[:KEY_HASH_SIZE], signature=raw[KEY_HASH_SIZE:])


def parse_note(note: str | bytes, *, strict: bool = True) -> Note:
    """Parse a signed note from its wire form (``bytes`` must be UTF-8).

    The text is everything up to and including the newline before the last blank
    line. Raises :class:`NoteError` for a malformed envelope: not UTF-8, control
    characters, no final newline, no blank line, no signature line, more than
    ``MAX_SIGNATURES`` signature lines, a line over ``MAX_LINE_BYTES``, over
    ``MAX_NOTE_BYTES`` in all. A malformed signature line raises too when
    ``strict``; otherwise it lands in ``Note.malformed``.
    """
    if isinstance(note, bytes | bytearray | memoryview):
        raw = bytes(note)
        if len(raw) > MAX_NOTE_BYTES:
            raise NoteError(f"note is longer than {MAX_NOTE_BYTES} bytes")
        try:
            note = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("note is not valid UTF-8") from None
    if not isinstance(note, str):
        raise NoteError("note must be text")
    try:
        size = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        raise NoteError("note is not valid UTF-8") from None
    if size > MAX_NOTE_BYTES:
        raise NoteError(f"note is longer than {MAX_NOTE_BYTES} bytes")
    if not note.endswith("\n"):
        raise NoteError("note does not end in a newline")
    match = _FORBIDDEN_CONTROL.search(note)
    if match:
        raise NoteError(f"note contains control character {ord(match.group()):#04x}")
    split = note.rfind("\n\n")
    if split < 0:
        raise NoteError("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2 :]
    if not block:
        raise NoteError("note has no signature lines")
    # The whole note passed the UTF-8, size and control-character checks of the text,
    # which is not empty and ends in a newline (note[split]); what is left is its lines.
    _check_line_lengths(text, size)
    lines = block[:-1].split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"note has {len(lines)} signature lines, more than {MAX_SIGNATURES}")
    signatures: list[NoteSignature] = []
    malformed: list[str] = []
    for number, line in enumerate(lines, start=1):
        try:
            signatures.append(parse_signature_line(line))
        except NoteError as e:
            if strict or len(line.encode("utf-8")) > MAX_LINE_BYTES:
                raise NoteError(f"signature line {number}: {e}") from None
            malformed.append(line)
    return Note(text=text, signatures=tuple(signatures), malformed=tuple(malformed))


def format_note(text: str, signatures: Iterable[NoteSignature]) -> str:
    """The wire form of ``text`` with ``signatures``, in the given order.

    Raises :class:`NoteError` if the text is not valid note text (see
    :func:`check_note_text`), there is no signature, or more than ``MAX_SIGNATURES``.
    """
    check_note_text(text)
    lines = [sig.line for sig in signatures]
    if not lines:
        raise NoteError("a signed note needs at least one signature")
    if len(lines) > MAX_SIGNATURES:
        raise NoteError(f"more than {MAX_SIGNATURES} signatures")
    return text + "\n" + "".join(lines)


def note_signature(text: str, signer: Signer) -> NoteSignature:
    """Sign ``text`` (valid note text, see :func:`check_note_text`) with ``signer``."""
    check_note_text(text)
    return NoteSignature(
        name=signer.name,
        key_hash=signer.key_hash,
        signature=signer.sign(text.encode("utf-8")),
    )


def signature_line(text: str, signer: Signer) -> str:
    """The signature line (with final newline) of ``signer`` over ``text``."""
    return note_signature(text, signer).line


def sign_note(text: str, signer: Signer) -> str:
    """``text`` signed by ``signer``: text, blank line, one signature line."""
    return format_note(text, [note_signature(text, signer)])


def add_signatures(note: str, signature_lines: Iterable[str]) -> str:
    """``note`` (strictly parsed) with further signature lines appended.

    Lines identical to one already present are skipped. Signatures are not
    verified here. Raises :class:`NoteError` on a malformed note or line, or when
    the result would exceed ``MAX_SIGNATURES``.
    """
    parsed = parse_note(note)
    signatures = list(parsed.signatures)
    for line in signature_lines:
        signature = parse_signature_line(line)
        if signature not in signatures:
            signatures.append(signature)
    return format_note(parsed.text, signatures)


def verify_note_signature(
    text: str,
    signature: NoteSignature,
    name: str,
    public_key: bytes,
    *,
    verify: SignatureVerifier = verify_signature,
) -> bool:
    """Whether ``signature`` is by the Ed25519 key ``(name, public_key)`` over ``text``.

    False if the name or key hash do not match that key, or the signature is
    invalid; never raises. ``verify`` checks the Ed25519 signature (default
    :func:`chain.keys.verify_signature`; it must answer exactly as that does).
    """
    if signature.name != name or not is_valid_key_name(name):
        return False
    if signature.key_hash != key_hash(name, public_key):
        return False
    try:
        message = text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return verify(public_key, message, signature.signature)
