"""Validator signing keys: Ed25519 private keys with their signed-note key names.

A :class:`Signer` holds one validator's private key and its name; the name is the
signed-note key name (``docs/checkpoint-format.md``). Private key files are JSON,
written atomically with mode 0600; the key material never appears in a ``repr``,
an error message or a log line.

Key-name rules and the key hash live here (not in ``note.py``) because a signer
needs them to describe itself; ``chain.note`` re-exports them.

Verification is :func:`verify_signature` (pure: the same answer for the same bytes), by
libsodium (through PyNaCl): RFC 8032 Ed25519 with its strict checks (S below the group
order, canonical encodings, public key and R not of small order). OpenSSL's verifier,
which signs here, accepts more: for instance, with the small-order public key
``01 00..00`` the 64 bytes ``01 00..00 00..00`` verify as a signature of *any* message,
so a validator registered with such a key would sign for anyone. libsodium rejects
that, and is twice as fast on the same machine (~53 against ~102 us per verification),
which matters for courts checking receipts in bulk. Every signature an honest Ed25519
key makes passes both.

A cache makes it cheaper without changing any answer:

* :class:`VerifiedSignatures` (:func:`cached_verify_signature`), a bounded LRU of
  *successful* verifications by exact (public key, message, signature). Validators
  running in one process (the embedded default) each verify the same proposal, vote,
  QC and checkpoint signatures; with the cache each is verified once. A failure is never
  cached, so a forged signature is checked (and rejected) every time, and a hit needs
  the exact bytes that verified before. The consensus committee uses it; the offline
  receipt verifier (``notary.verify``) does not, so what it reports was checked.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
)
from nacl.bindings import crypto_sign_open
from nacl.exceptions import CryptoError

from chain.errors import KeyFileError, KeyNameError

PUBLIC_KEY_SIZE = 32
SEED_SIZE = 32
SIGNATURE_SIZE = 64
KEY_HASH_SIZE = 4
# The signed-note signature type byte of Ed25519 (C2SP signed-note, "Signature types").
SIGNATURE_TYPE_ED25519 = 0x01
# Generous for URL-like names, small enough that a hostile name cannot bloat a note.
MAX_KEY_NAME_BYTES = 256

# A name that is valid without looking further: ASCII 0x21..0x7E except '+'. (Every
# other ASCII character is whitespace, a control character or '+'.)
_PLAIN_KEY_NAME = re.compile(rf"[\x21-\x2a\x2c-\x7e]{{1,{MAX_KEY_NAME_BYTES}}}")

KEY_FILE_FORMAT = "notary-validator-key"
KEY_FILE_VERSION = 1


def check_key_name(name: str, *, what: str = "key name") -> None:
    """Raise :class:`KeyNameError` unless ``name`` is a valid signed-note key name.

    Valid: non-empty, at most 256 UTF-8 bytes, no Unicode whitespace, no ``+``,
    no control characters (below U+0020, U+007F, U+0080..U+009F). The same rules
    apply to checkpoint origins (chain ids) here.
    """
    # Fast path for the usual name: printable ASCII without space and '+', <= 256 chars.
    if isinstance(name, str) and _PLAIN_KEY_NAME.fullmatch(name) is not None:
        return
    if not isinstance(name, str) or not name:
        raise KeyNameError(f"{what} must be a non-empty string")
    if len(name.encode("utf-8", errors="surrogatepass")) > MAX_KEY_NAME_BYTES:
        raise KeyNameError(f"{what} is longer than {MAX_KEY_NAME_BYTES} bytes")
    for ch in name:
        if ch == "+":
            raise KeyNameError(f"{what} {name!r} contains '+'")
        if ch.isspace() or ch in "\u200b\u2060\ufeff":
            raise KeyNameError(f"{what} {name!r} contains whitespace")
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise KeyNameError(f"{what} {name!r} contains a control character")
        if 0xD800 <= code <= 0xDFFF:
            raise KeyNameError(f"{what} {name!r} is not valid Unicode (lone surrogate)")


def is_valid_key_name(name: str) -> bool:
    """Return whether ``name`` passes :func:`check_key_name`; never raises."""
    try:
        check_key_name(name)
    except KeyNameError:
        return False
    return True


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte signed-note key ID: SHA-256(name || 0x0A || 0x01 || public key)[:4].

    Precondition: ``name`` is a valid key name, ``public_key`` 32 raw Ed25519 bytes.
    """
    data = name.encode("utf-8") + b"\n" + bytes([SIGNATURE_TYPE_ED25519]) + public_key
    return hashlib.sha256(data).digest()[:KEY_HASH_SIZE]


def verifier_key(name: str, public_key: bytes) -> str:
    """The signed-note verifier key ``name+<8 hex key hash>+base64(0x01 || public key)``.

    Raises :class:`KeyNameError` for a bad name and ``ValueError`` for a public key
    that is not 32 bytes (a programming error, not input).
    """
    check_key_name(name)
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ValueError("an Ed25519 public key is 32 bytes")
    encoded = base64.b64encode(bytes([SIGNATURE_TYPE_ED25519]) + public_key).decode("ascii")
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    """Parse a verifier key string into ``(name, 32-byte public key)``.

    Strict: ``name+hash+key`` split at the first two ``+`` (base64 may contain
    ``+``); a valid name; 8 lowercase hex digits equal to the computed key hash;
    canonical standard base64 of 33 bytes whose first byte is 0x01. Raises
    :class:`KeyNameError` on any violation.
    """
    # Split at the first two '+' only: the base64 key itself may contain '+'.
    parts = text.split("+", 2) if isinstance(text, str) else []
    if len(parts) != 3:
        raise KeyNameError("a verifier key has the form name+hash+key")
    name, hash_hex, key_b64 = parts
    check_key_name(name)
    if len(hash_hex) != 2 * KEY_HASH_SIZE or any(c not in "0123456789abcdef" for c in hash_hex):
        raise KeyNameError(f"verifier key {name!r}: key hash must be 8 lowercase hex digits")
    raw = decode_b64(key_b64)
    if raw is None or len(raw) != 1 + PUBLIC_KEY_SIZE:
        raise KeyNameError(f"verifier key {name!r}: key is not base64 of 33 bytes")
    if raw[0] != SIGNATURE_TYPE_ED25519:
        raise KeyNameError(f"verifier key {name!r}: unsupported signature type {raw[0]:#04x}")
    public_key = raw[1:]
    if key_hash(name, public_key).hex() != hash_hex:
        raise KeyNameError(f"verifier key {name!r}: key hash does not match name and key")
    return name, public_key


def decode_b64(text: str) -> bytes | None:
    """Decode canonical standard base64 (RFC 4648 section 4, padded); None if invalid.

    Canonical means re-encoding gives back ``text``: this rejects whitespace, missing
    padding and non-zero trailing bits, so one value has exactly one encoding.
    """
    if not isinstance(text, str) or not text.isascii():
        return None
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    if base64.b64encode(raw).decode("ascii") != text:
        return None
    return raw


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is a valid Ed25519 signature of ``message`` by ``public_key``
    under libsodium's strict rules (module docstring).

    Never raises: malformed keys or signatures (wrong length, not a curve point, of
    small order, wrong type) are simply invalid.
    """
    try:
        if len(public_key) != PUBLIC_KEY_SIZE or len(signature) != SIGNATURE_SIZE:
            return False
        crypto_sign_open(bytes(signature) + bytes(message), bytes(public_key))
    except (CryptoError, TypeError):
        return False
    return True


class VerifiedSignatures:
    """A bounded LRU set of (public key, message, signature) triples that verified.

    :meth:`verify` answers exactly as :func:`verify_signature`: a hit needs the very
    bytes that verified before (dictionary keys compare by equality, so a hash
    collision cannot produce a false hit), and failures are not remembered. Safe to
    share between threads.
    """

    def __init__(self, max_entries: int = 8192) -> None:
        """Remember at most ``max_entries`` successes (least recently used evicted)."""
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.max_entries = max_entries
        self._ok: OrderedDict[tuple[bytes, bytes, bytes], None] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._ok)

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is valid (see :func:`verify_signature`); never raises."""
        try:
            key = (bytes(public_key), bytes(message), bytes(signature))
        except TypeError:
            return False
        with self._lock:
            if key in self._ok:
                self._ok.move_to_end(key)
                self.hits += 1
                return True
            self.misses += 1
        if not verify_signature(*key):
            return False
        with self._lock:
            self._ok[key] = None
            if len(self._ok) > self.max_entries:
                self._ok.popitem(last=False)
        return True

    def clear(self) -> None:
        """Forget every remembered success."""
        with self._lock:
            self._ok.clear()


# Shared by every committee of the process (validators in one process verify the same
# messages); a few thousand small triples, about a megabyte at most.
VERIFIED_SIGNATURES = VerifiedSignatures()


def cached_verify_signature(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """:func:`verify_signature` through the process-wide :data:`VERIFIED_SIGNATURES`."""
    return VERIFIED_SIGNATURES.verify(public_key, message, signature)


class Signer:
    """An Ed25519 private key with its validator (signed-note key) name.

    Immutable. ``repr`` shows the name and public key only.
    """

    __slots__ = ("_private", "name", "public_key")

    name: str
    public_key: bytes
    _private: Ed25519PrivateKey

    def __init__(self, name: str, private_key: Ed25519PrivateKey) -> None:
        """Wrap ``private_key`` under ``name``; raises :class:`KeyNameError` for a bad name."""
        check_key_name(name)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "_private", private_key)
        object.__setattr__(
            self,
            "public_key",
            private_key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            ),
        )

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Signer is immutable")

    def __repr__(self) -> str:
        return f"Signer(name={self.name!r}, public_key={base64.b64encode(self.public_key)!r})"

    def __reduce__(self) -> Any:
        # Pickling would copy the private key into wherever the pickle goes.
        raise TypeError("a Signer is not picklable; save it with Signer.save")

    @classmethod
    def generate(cls, name: str, rng: Callable[[int], bytes] | None = None) -> Signer:
        """A new key under ``name``; ``rng(32)`` supplies the seed (default: the OS CSPRNG).

        Pass a seeded ``rng`` only in tests and simulations.
        """
        if rng is None:
            return cls(name, Ed25519PrivateKey.generate())
        return cls.from_seed(name, rng(SEED_SIZE))

    @classmethod
    def from_seed(cls, name: str, seed: bytes) -> Signer:
        """The key whose RFC 8032 32-byte private key (seed) is ``seed``; deterministic."""
        if len(seed) != SEED_SIZE:
            raise ValueError("an Ed25519 seed is 32 bytes")
        return cls(name, Ed25519PrivateKey.from_private_bytes(bytes(seed)))

    @property
    def key_hash(self) -> bytes:
        """The 4-byte signed-note key ID of this signer."""
        return key_hash(self.name, self.public_key)

    @property
    def verifier_key(self) -> str:
        """The signed-note verifier key string of this signer."""
        return verifier_key(self.name, self.public_key)

    def sign(self, message: bytes) -> bytes:
        """The 64-byte Ed25519 signature of ``message``."""
        return self._private.sign(bytes(message))

    def _seed(self) -> bytes:
        return self._private.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    def save(self, path: Path, *, overwrite: bool = True) -> None:
        """Write the private key file at ``path`` atomically with mode 0600.

        The file is complete or absent after a crash (temporary file, fsync, rename,
        fsync of the directory). With ``overwrite=False`` an existing file is never
        replaced (:class:`KeyFileError`), even if it appears concurrently.
        """
        path = Path(path)
        document = {
            "format": KEY_FILE_FORMAT,
            "version": KEY_FILE_VERSION,
            "name": self.name,
            "algorithm": "ed25519",
            "public_key": base64.b64encode(self.public_key).decode("ascii"),
            "private_key": base64.b64encode(self._seed()).decode("ascii"),
        }
        data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
        _write_private_file(path, data, overwrite=overwrite)

    @classmethod
    def load(cls, path: Path) -> Signer:
        """Read a private key file written by :meth:`save`.

        Raises :class:`KeyFileError` naming the file and the field at fault; the
        message never contains key material.
        """
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise KeyFileError(f"{path}: cannot read key file: {e.strerror or e}") from None
        try:
            document = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise KeyFileError(f"{path}: not a JSON key file") from None
        return cls._from_document(document, str(path))

    @classmethod
    def _from_document(cls, document: object, where: str) -> Signer:
        if not isinstance(document, dict):
            raise KeyFileError(f"{where}: key file is not a JSON object")
        if document.get("format") != KEY_FILE_FORMAT:
            raise KeyFileError(f"{where}: field 'format' must be {KEY_FILE_FORMAT!r}")
        version = document.get("version")
        if type(version) is not int or version != KEY_FILE_VERSION:
            raise KeyFileError(f"{where}: unsupported key file 'version'")
        if document.get("algorithm") != "ed25519":
            raise KeyFileError(f"{where}: field 'algorithm' must be 'ed25519'")
        name = document.get("name")
        if not isinstance(name, str):
            raise KeyFileError(f"{where}: field 'name' must be a string")
        try:
            check_key_name(name)
        except KeyNameError as e:
            raise KeyFileError(f"{where}: field 'name': {e}") from None
        private_b64 = document.get("private_key")
        seed = decode_b64(private_b64) if isinstance(private_b64, str) else None
        if seed is None or len(seed) != SEED_SIZE:
            raise KeyFileError(f"{where}: field 'private_key' is not base64 of 32 bytes")
        signer = cls.from_seed(name, seed)
        public_b64 = document.get("public_key")
        if public_b64 is not None and public_b64 != base64.b64encode(signer.public_key).decode():
            raise KeyFileError(
                f"{where}: field 'public_key' does not match the private key (file corrupt?)"
            )
        return signer


def _write_private_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Atomically create ``path`` with ``data`` and mode 0600 (see :meth:`Signer.save`)."""
    directory = path.parent if str(path.parent) else Path()
    if not overwrite and path.exists():
        raise KeyFileError(f"{path}: key file exists; refusing to overwrite it")
    tmp = directory / f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as e:
        raise KeyFileError(f"{path}: cannot create key file: {e.strerror or e}") from None
    try:
        try:
            os.fchmod(fd, 0o600)  # the umask cannot widen it, but be explicit
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        if overwrite:
            tmp.replace(path)
        else:
            # link() fails if the target exists: no-clobber even against a racing writer.
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise KeyFileError(f"{path}: key file exists; refusing to overwrite it") from None
            tmp.unlink()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot write key file: {e.strerror or e}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems refuse fsync on directories; the rename is still atomic
    finally:
        os.close(fd)
