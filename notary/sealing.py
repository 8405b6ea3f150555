"""Sealing: streaming AES-256-GCM encryption of confidential documents.

The format is specified in ``docs/sealing.md``; this module is its reference
implementation. Pure: no I/O, no clock; randomness and the thread pool are passed in.

**Records.** The plaintext is cut into records of ``record_size`` bytes (the last one
may be shorter; an empty document is one empty record). Record ``i`` is sealed with
AES-256-GCM under a per-document random 256-bit *data key*::

    nonce_i  = nonce_prefix (7 bytes) || uint32_be(i) || final_i (0x01 on the last, else 0x00)
    ad       = "notary-seal/v1" || 0x00 || doc_id
    record_i = AES-256-GCM(data_key, nonce_i, plaintext_i, ad)   (ciphertext || 16-byte tag)

This is the STREAM construction of Hoang, Reyhanitabar, Rogaway and Vizar ("Online
Authenticated-Encryption and its Nonce-Reuse Misuse-Resistance", CRYPTO 2015), the
layout Tink's streaming AEAD uses: the counter in the nonce makes every record open only
at its own position (reordered, dropped or duplicated records fail), and the final flag
makes only the true last record open as last (a stream cut at a record boundary fails).
The document id in the associated data ties the records to their document.

**Keys.** The data key is wrapped with AES key wrap (RFC 3394) under a 256-bit *master
key*, named by a key id. Several master keys may be configured (a :class:`Keyring`): the
newest seals, any unseals, so master keys can be rotated without re-sealing.

**Parameters.** :class:`SealParams` (record size, plaintext size, nonce prefix, key id,
wrapped key) is the JSON ``encryption`` object of the storage manifest; it never holds a
plaintext key.

AES-GCM in ``cryptography`` holds the GIL while it encrypts (measured: two threads seal
no faster than one), so offloading buys no parallelism. What it buys is a bound on how
long the event loop waits: a worker sealing record by record gives the GIL back within
the interpreter's switch interval (5 ms), whereas sealing inline blocks the loop for the
whole chunk (about 0.5 ms per MiB). The async helpers therefore seal inline below
``OFFLOAD_THRESHOLD`` (4 MiB: the HTTP layer's 256 KiB reads never pay a thread hop)
and in a worker above it (benchmarks/sealing_bench.py, ``loop_gap_ms_*``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import struct
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

SCHEME = "notary-seal"
VERSION = 1
AEAD = "AES-256-GCM"
KEY_WRAP = "AES-KW"  # RFC 3394 with a 256-bit key-encryption key
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 7
WRAPPED_KEY_SIZE = KEY_SIZE + 8
DEFAULT_RECORD_SIZE = 64 * 1024
MIN_RECORD_SIZE = 16
MAX_RECORD_SIZE = 16 * 1024 * 1024
MAX_RECORDS = 2**32  # the nonce's counter is 32 bits
OFFLOAD_THRESHOLD = 4 * 1024 * 1024
AD_LABEL = b"notary-seal/v1\x00"
KEY_ID_LABEL = b"notary-seal/v1 key id\x00"
_MAX_SAFE_INT = 2**53 - 1

_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HEX = re.compile(r"[0-9a-f]*")
_DOC_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,63}")
_T = TypeVar("_T")
Buffer = bytes | bytearray | memoryview
RandomBytes = Callable[[int], bytes]


class SealingError(Exception):
    """Sealed content or sealing parameters that cannot be opened.

    ``reason`` is a stable code (``record_auth``, ``truncated``, ``trailing_data``,
    ``unknown_key``, ``unwrap_failed``, ``bad_params``, ``bad_key``, ``too_large``);
    ``record`` names the record at fault, when one is. Messages never contain key
    material.
    """

    def __init__(self, reason: str, message: str, *, record: int | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.record = record


class Offload(Protocol):
    """Runs ``fn(*args)`` elsewhere (a worker thread) and awaits its result."""

    def __call__(self, fn: Callable[..., _T], /, *args: Any) -> Awaitable[_T]: ...


# ------------------------------------------------------------------ master keys


def derive_key_id(key: bytes) -> str:
    """The default id of a master key: 16 hex digits of SHA-256(label || key)."""
    return hashlib.sha256(KEY_ID_LABEL + key).digest()[:8].hex()


@dataclass(frozen=True)
class MasterKey:
    """A 256-bit key-encryption key and its id (the key is never in the repr)."""

    key_id: str
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE:
            raise SealingError("bad_key", f"master key {self.key_id}: must be {KEY_SIZE} bytes")
        if not _KEY_ID.fullmatch(self.key_id):
            raise SealingError("bad_key", "a key id is 1-64 of [A-Za-z0-9._-]")

    @classmethod
    def from_bytes(cls, key: bytes, key_id: str | None = None) -> MasterKey:
        """A master key named ``key_id``, or by :func:`derive_key_id` when None."""
        if len(key) != KEY_SIZE:
            raise SealingError("bad_key", f"a master key must be {KEY_SIZE} bytes")
        return cls(key_id if key_id is not None else derive_key_id(key), key)


@dataclass(frozen=True)
class Keyring:
    """The configured master keys, oldest first: the last one seals, any one unseals."""

    keys: tuple[MasterKey, ...]

    def __post_init__(self) -> None:
        if not self.keys:
            raise SealingError("bad_key", "a keyring needs at least one master key")
        ids = [k.key_id for k in self.keys]
        if len(set(ids)) != len(ids):
            raise SealingError("bad_key", "master key ids must be unique")

    @property
    def newest(self) -> MasterKey:
        """The key that seals new documents."""
        return self.keys[-1]

    def find(self, key_id: str) -> MasterKey:
        """The key named ``key_id``; SealingError ``unknown_key`` if none is."""
        for k in self.keys:
            if k.key_id == key_id:
                return k
        raise SealingError(
            "unknown_key",
            f"the master key {key_id!r} that sealed this document is not configured "
            f"(configured: {', '.join(k.key_id for k in self.keys)})",
        )


def _decode_key(text: str) -> bytes | None:
    if len(text) == 2 * KEY_SIZE and _HEX.fullmatch(text.lower()):
        return bytes.fromhex(text)
    try:
        key = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return key if len(key) == KEY_SIZE else None


def parse_keyring(text: str, source: str) -> Keyring:
    """Parse master keys: one per line (or comma-separated), oldest first.

    A key is base64 (44 characters) or 64 hex digits of 32 bytes, optionally preceded by
    ``<key id>:``; blank lines and ``#`` comments are ignored. ``source`` names where
    the text came from in error messages, which name lines but never key material.
    """
    keys: list[MasterKey] = []
    entries = [
        (lineno, entry.strip())
        for lineno, line in enumerate(text.splitlines(), 1)
        if not line.strip().startswith("#")
        for entry in line.split(",")
        if entry.strip()
    ]
    for lineno, entry in entries:
        key_id, sep, material = entry.rpartition(":")
        key = _decode_key(material.strip())
        if key is None:
            raise SealingError(
                "bad_key",
                f"{source}, line {lineno}: not a 32-byte key (base64 or 64 hex digits)",
            )
        key_id = key_id.strip() if sep else derive_key_id(key)
        if not _KEY_ID.fullmatch(key_id):
            raise SealingError(
                "bad_key", f"{source}, line {lineno}: a key id is 1-64 of [A-Za-z0-9._-]"
            )
        keys.append(MasterKey(key_id, key))
    if not keys:
        raise SealingError("bad_key", f"{source}: no master key")
    try:
        return Keyring(tuple(keys))
    except SealingError as e:
        raise SealingError(e.reason, f"{source}: {e}") from None


def format_master_key(key: bytes) -> str:
    """The key-file line of a master key (base64; its id is derived)."""
    return base64.b64encode(key).decode("ascii")


# ------------------------------------------------------------------- parameters


def record_count(plaintext_size: int, record_size: int) -> int:
    """How many records seal ``plaintext_size`` bytes (an empty document is one record)."""
    return max(1, -(-plaintext_size // record_size))


def sealed_size(plaintext_size: int, record_size: int) -> int:
    """The size of the sealed stream: the plaintext plus a tag per record."""
    return plaintext_size + TAG_SIZE * record_count(plaintext_size, record_size)


@dataclass(frozen=True)
class SealParams:
    """The manifest's ``encryption`` object: everything but the master key to unseal."""

    record_size: int
    plaintext_size: int
    nonce_prefix: bytes
    key_id: str
    wrapped_key: bytes

    @property
    def records(self) -> int:
        """The number of records."""
        return record_count(self.plaintext_size, self.record_size)

    @property
    def sealed_size(self) -> int:
        """The size of the sealed stream."""
        return sealed_size(self.plaintext_size, self.record_size)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (docs/sealing.md)."""
        return {
            "scheme": SCHEME,
            "version": VERSION,
            "aead": AEAD,
            "record_size": self.record_size,
            "plaintext_size": self.plaintext_size,
            "nonce_prefix": self.nonce_prefix.hex(),
            "key_id": self.key_id,
            "key_wrap": KEY_WRAP,
            "wrapped_key": self.wrapped_key.hex(),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SealParams:
        """Parse and range-check the JSON object; SealingError ``bad_params`` if invalid."""

        def bad(why: str) -> SealingError:
            return SealingError("bad_params", f"sealing parameters: {why}")

        if not isinstance(obj, Mapping):
            raise bad("must be an object")
        if obj.get("scheme") != SCHEME or obj.get("version") != VERSION:
            raise bad(f"unknown scheme {obj.get('scheme')!r} version {obj.get('version')!r}")
        if obj.get("aead") != AEAD or obj.get("key_wrap") != KEY_WRAP:
            raise bad(f"unsupported aead {obj.get('aead')!r} / key_wrap {obj.get('key_wrap')!r}")

        def integer(name: str, lo: int, hi: int) -> int:
            value = obj.get(name)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                raise bad(f"{name} must be an integer in [{lo}, {hi}]")
            return value

        def hexbytes(name: str, size: int) -> bytes:
            value = obj.get(name)
            if not isinstance(value, str) or len(value) != 2 * size or not _HEX.fullmatch(value):
                raise bad(f"{name} must be {2 * size} lowercase hex digits")
            return bytes.fromhex(value)

        record_size = integer("record_size", MIN_RECORD_SIZE, MAX_RECORD_SIZE)
        plaintext_size = integer("plaintext_size", 0, _MAX_SAFE_INT)
        if record_count(plaintext_size, record_size) > MAX_RECORDS:
            raise bad(f"{plaintext_size} bytes need more than {MAX_RECORDS} records")
        key_id = obj.get("key_id")
        if not isinstance(key_id, str) or not _KEY_ID.fullmatch(key_id):
            raise bad("key_id must be 1-64 of [A-Za-z0-9._-]")
        return cls(
            record_size=record_size,
            plaintext_size=plaintext_size,
            nonce_prefix=hexbytes("nonce_prefix", NONCE_PREFIX_SIZE),
            key_id=key_id,
            wrapped_key=hexbytes("wrapped_key", WRAPPED_KEY_SIZE),
        )


def record_nonce(prefix: bytes, index: int, final: bool) -> bytes:
    """The 12-byte nonce of record ``index``: prefix || uint32_be(index) || final flag."""
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def associated_data(doc_id: str) -> bytes:
    """The associated data of every record of document ``doc_id``."""
    return AD_LABEL + doc_id.encode("ascii")


def _check_doc_id(doc_id: str) -> str:
    if not _DOC_ID.fullmatch(doc_id):
        raise SealingError("bad_params", f"invalid document id {doc_id!r}")
    return doc_id


# ---------------------------------------------------------------------- sealing


class RecordSealer:
    """Seals a plaintext stream record by record (incremental, not thread-safe).

    ``update`` returns the records completed so far; it holds back up to one record,
    because a record can only be sealed once it is known whether it is the last.
    ``finish`` seals what is left as the final record and fixes ``params``.
    """

    def __init__(
        self,
        doc_id: str,
        master: MasterKey,
        *,
        data_key: bytes,
        nonce_prefix: bytes,
        record_size: int = DEFAULT_RECORD_SIZE,
    ) -> None:
        if len(data_key) != KEY_SIZE or len(nonce_prefix) != NONCE_PREFIX_SIZE:
            raise SealingError("bad_params", "a data key is 32 bytes, a nonce prefix 7")
        if not MIN_RECORD_SIZE <= record_size <= MAX_RECORD_SIZE:
            raise SealingError("bad_params", f"record size {record_size} out of range")
        self._aead = AESGCM(data_key)
        self._ad = associated_data(_check_doc_id(doc_id))
        self._prefix = nonce_prefix
        self._record_size = record_size
        self._key_id = master.key_id
        self._wrapped = aes_key_wrap(master.key, data_key)
        self._buffer = bytearray()
        self._index = 0
        self._size = 0
        self._finished = False

    @classmethod
    def create(
        cls,
        doc_id: str,
        keyring: Keyring,
        random_bytes: RandomBytes,
        record_size: int = DEFAULT_RECORD_SIZE,
    ) -> RecordSealer:
        """A sealer with a fresh data key and nonce prefix, wrapped by the newest key."""
        return cls(
            doc_id,
            keyring.newest,
            data_key=random_bytes(KEY_SIZE),
            nonce_prefix=random_bytes(NONCE_PREFIX_SIZE),
            record_size=record_size,
        )

    def _seal(self, data: Buffer, final: bool) -> bytes:
        if self._index >= MAX_RECORDS:
            raise SealingError("too_large", f"more than {MAX_RECORDS} records", record=self._index)
        nonce = record_nonce(self._prefix, self._index, final)
        self._index += 1
        return self._aead.encrypt(nonce, data, self._ad)

    def update(self, data: bytes) -> bytes:
        """Take more plaintext; return the records it completed (possibly empty)."""
        if self._finished:
            raise SealingError("bad_params", "update after finish")
        self._size += len(data)
        size = self._record_size
        if len(self._buffer) + len(data) <= size:  # not yet known whether it is the last
            self._buffer += data
            return b""
        out: list[bytes] = []
        with memoryview(data) as view:
            if self._buffer:  # complete the held-back record: more follows, so not final
                fill = size - len(self._buffer)
                self._buffer += view[:fill]
                out.append(self._seal(self._buffer, False))
                self._buffer = bytearray()
                view = view[fill:]
            # Seal straight from the caller's bytes; hold back the last 1..size bytes.
            ready = (len(view) - 1) // size if len(view) else 0
            out.extend(self._seal(view[i * size : (i + 1) * size], False) for i in range(ready))
            self._buffer += view[ready * size :]
        return out[0] if len(out) == 1 else b"".join(out)

    def finish(self) -> bytes:
        """Seal the rest as the final record and return it."""
        if self._finished:
            raise SealingError("bad_params", "finish called twice")
        out = self._seal(bytes(self._buffer), True)
        self._buffer = bytearray()
        self._finished = True
        return out

    @property
    def params(self) -> SealParams:
        """The parameters of the sealed stream (available once finished)."""
        if not self._finished:
            raise SealingError("bad_params", "the stream is not finished yet")
        return SealParams(
            record_size=self._record_size,
            plaintext_size=self._size,
            nonce_prefix=self._prefix,
            key_id=self._key_id,
            wrapped_key=self._wrapped,
        )


async def _inline(fn: Callable[..., _T], /, *args: Any) -> _T:
    return fn(*args)


async def seal_stream(
    chunks: AsyncIterable[bytes],
    sealer: RecordSealer,
    *,
    offload: Offload | None = None,
    threshold: int = OFFLOAD_THRESHOLD,
) -> AsyncIterator[bytes]:
    """Yield the sealed stream of ``chunks`` (never holding more than a chunk and a record).

    Chunks of at least ``threshold`` bytes are sealed through ``offload``. After the
    generator is exhausted, ``sealer.params`` describes the stream.
    """
    run = offload or _inline
    async for chunk in chunks:
        if not chunk:
            continue
        out = await run(sealer.update, chunk) if len(chunk) >= threshold else sealer.update(chunk)
        if out:
            yield out
    yield sealer.finish()


def seal_bytes(sealer: RecordSealer, plaintext: bytes) -> bytes:
    """The whole sealed stream of ``plaintext`` (small documents, tests, vectors)."""
    return sealer.update(plaintext) + sealer.finish()


# -------------------------------------------------------------------- unsealing


class RecordOpener:
    """Opens the records of one sealed document (its data key unwrapped)."""

    def __init__(self, doc_id: str, keyring: Keyring, params: SealParams) -> None:
        master = keyring.find(params.key_id)
        try:
            data_key = aes_key_unwrap(master.key, params.wrapped_key)
        except InvalidUnwrap:
            raise SealingError(
                "unwrap_failed",
                f"the master key {params.key_id!r} does not unwrap this document's key: "
                "a different key is configured under that id, or the wrapped key is damaged",
            ) from None
        if len(data_key) != KEY_SIZE:
            raise SealingError("unwrap_failed", "the unwrapped data key is not 32 bytes")
        self.params = params
        self._aead = AESGCM(data_key)
        self._ad = associated_data(_check_doc_id(doc_id))

    def record_length(self, index: int) -> int:
        """The sealed length of record ``index`` (its plaintext plus the tag)."""
        p = self.params
        last = p.records - 1
        if not 0 <= index <= last:
            raise SealingError("bad_params", f"no record {index}", record=index)
        plain = p.record_size if index < last else p.plaintext_size - last * p.record_size
        return plain + TAG_SIZE

    def open(self, index: int, record: Buffer) -> bytes:
        """The plaintext of record ``index``; SealingError ``record_auth`` if it does not
        authenticate at that position."""
        final = index == self.params.records - 1
        if len(record) != self.record_length(index):
            raise SealingError(
                "truncated",
                f"record {index} has {len(record)} bytes, {self.record_length(index)} expected",
                record=index,
            )
        try:
            return self._aead.decrypt(
                record_nonce(self.params.nonce_prefix, index, final), record, self._ad
            )
        except InvalidTag:
            raise SealingError(
                "record_auth",
                f"record {index} of {self.params.records} failed authentication: its bytes "
                "were altered, it was moved from another position or document, or the "
                "stream was cut short or extended",
                record=index,
            ) from None

    def open_many(self, first: int, records: list[Buffer]) -> list[bytes]:
        """Open consecutive records starting at ``first`` (one offloadable call)."""
        return [self.open(first + i, r) for i, r in enumerate(records)]


def record_span(params: SealParams, start: int, end: int) -> tuple[int, int, int, int]:
    """For plaintext ``[start, end)`` (non-empty): the first and last record covering it
    and the sealed byte range ``[sealed_start, sealed_end)`` holding those records."""
    if not 0 <= start < end <= params.plaintext_size:
        raise ValueError(f"range [{start}, {end}) outside {params.plaintext_size} bytes")
    stride = params.record_size + TAG_SIZE
    first, last = start // params.record_size, (end - 1) // params.record_size
    return first, last, first * stride, min((last + 1) * stride, params.sealed_size)


async def unseal_range(
    read: Callable[[int, int], AsyncIterable[bytes]],
    opener: RecordOpener,
    start: int,
    end: int,
    *,
    offload: Offload | None = None,
    threshold: int = OFFLOAD_THRESHOLD,
) -> AsyncIterator[bytes]:
    """Yield plaintext ``[start, end)``, reading only the sealed records that cover it.

    ``read(sealed_start, sealed_end)`` yields that range of the sealed stream in chunks
    of any size. Every record is authenticated before any of its bytes are yielded.
    Batches of at least ``threshold`` bytes are opened through ``offload``.
    """
    params = opener.params
    if start == end:
        if not 0 <= start <= params.plaintext_size:
            raise ValueError(f"offset {start} outside {params.plaintext_size} bytes")
        return
    first, last, sealed_start, sealed_end = record_span(params, start, end)
    run = offload or _inline
    size = params.record_size
    pending = bytearray()  # the start of a record split across chunks
    index = first
    async for chunk in read(sealed_start, sealed_end):
        view = memoryview(chunk)
        batch: list[Buffer] = []
        if pending and index <= last:
            fill = min(opener.record_length(index) - len(pending), len(view))
            pending += view[:fill]
            view = view[fill:]
            if len(pending) < opener.record_length(index):
                continue
            batch.append(bytes(pending))
            pending = bytearray()
        pos = 0
        while index + len(batch) <= last:
            need = opener.record_length(index + len(batch))
            if len(view) - pos < need:
                break
            batch.append(view[pos : pos + need])  # no copy: chunks are immutable bytes
            pos += need
        pending += view[pos:]
        if not batch:
            continue
        if sum(len(b) for b in batch) >= threshold:
            plain = await run(opener.open_many, index, batch)
        else:
            plain = opener.open_many(index, batch)
        for i, data in enumerate(plain, start=index):
            lo, hi = max(start - i * size, 0), min(end - i * size, len(data))
            yield data if (lo == 0 and hi == len(data)) else data[lo:hi]
        index += len(batch)
    if index <= last:
        raise SealingError(
            "truncated",
            f"the sealed stream ended before record {index} (of {params.records}): "
            "perhaps truncated",
            record=index,
        )
    if pending:
        raise SealingError(
            "trailing_data", f"{len(pending)} bytes after record {last}", record=last
        )


def unseal_bytes(opener: RecordOpener, sealed: bytes) -> bytes:
    """The whole plaintext of a sealed stream held in memory (small documents, tests)."""
    params = opener.params
    if len(sealed) < params.sealed_size:
        whole = len(sealed) // (params.record_size + TAG_SIZE)
        raise SealingError(
            "truncated",
            f"{len(sealed)} sealed bytes, {params.sealed_size} expected: perhaps truncated "
            f"after record {whole - 1}",
            record=whole,
        )
    if len(sealed) > params.sealed_size:
        raise SealingError(
            "trailing_data",
            f"{len(sealed) - params.sealed_size} bytes after the final record",
            record=params.records - 1,
        )
    out = []
    offset = 0
    for i in range(params.records):
        n = opener.record_length(i)
        out.append(opener.open(i, sealed[offset : offset + n]))
        offset += n
    return b"".join(out)
