"""The canonical byte encoding of consensus data (for hashing, signing and the wire).

Fields are concatenated without padding:

* ``u8``/``u16``/``u32``/``u64``: unsigned big-endian integers of 1, 2, 4, 8 bytes;
* ``bytes``: a ``u32`` length followed by the bytes;
* ``str``: its UTF-8 bytes encoded as ``bytes``;
* a sequence: a ``u32`` count followed by the items;
* an optional value: ``u8`` 0 (absent) or 1 followed by the value.

Every signed or hashed message starts with a domain tag (``bytes``) such as
``notary/consensus/v1/vote`` so a signature for one purpose is never valid for another.
The :class:`Reader` rejects truncated input, lengths beyond a bound and trailing bytes.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from chain.consensus.errors import InvalidMessageError

DOMAIN = "notary/consensus/v1/"
# No single encoded field may exceed this many bytes (a block's entries are separate fields).
MAX_FIELD_BYTES = 64 << 20
_U32 = struct.Struct(">I")


class Writer:
    """Appends canonically encoded fields to a buffer."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> Writer:
        """Append ``value`` (0 <= value < 2**8)."""
        self._parts.append(struct.pack(">B", value))
        return self

    def u16(self, value: int) -> Writer:
        """Append ``value`` (0 <= value < 2**16)."""
        self._parts.append(struct.pack(">H", value))
        return self

    def u32(self, value: int) -> Writer:
        """Append ``value`` (0 <= value < 2**32)."""
        self._parts.append(struct.pack(">I", value))
        return self

    def u64(self, value: int) -> Writer:
        """Append ``value`` (0 <= value < 2**64)."""
        self._parts.append(struct.pack(">Q", value))
        return self

    def blob(self, value: bytes) -> Writer:
        """Append ``value`` with its u32 length."""
        self._parts.append(_U32.pack(len(value)))
        self._parts.append(value)
        return self

    def blobs(self, values: Sequence[bytes]) -> Writer:
        """Append a sequence of ``bytes``: its u32 count, then each with its u32 length.

        The same bytes as ``u32(len(values))`` and ``blob`` per item, in one pass (blocks
        carry thousands of entries).
        """
        pack = _U32.pack
        parts = self._parts
        parts.append(pack(len(values)))
        for value in values:
            parts.append(pack(len(value)))
            parts.append(value)
        return self

    def text(self, value: str) -> Writer:
        """Append the UTF-8 bytes of ``value`` with their length."""
        return self.blob(value.encode("utf-8"))

    def raw(self, value: bytes) -> Writer:
        """Append already-encoded bytes as they are."""
        self._parts.append(value)
        return self

    def getvalue(self) -> bytes:
        """The encoding so far."""
        return b"".join(self._parts)


def tagged(tag: str) -> Writer:
    """A writer that starts with the domain tag ``notary/consensus/v1/<tag>``."""
    return Writer().text(DOMAIN + tag)


class Reader:
    """Reads canonically encoded fields; raises :class:`InvalidMessageError` on bad input."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._pos = 0

    def _take(self, n: int) -> bytes:
        end = self._pos + n
        if n < 0 or end > len(self._data):
            raise InvalidMessageError("truncated message")
        chunk = self._data[self._pos : end].tobytes()
        self._pos = end
        return chunk

    def u8(self) -> int:
        """Read a u8."""
        return int(struct.unpack(">B", self._take(1))[0])

    def u16(self) -> int:
        """Read a u16."""
        return int(struct.unpack(">H", self._take(2))[0])

    def u32(self) -> int:
        """Read a u32."""
        return int(struct.unpack(">I", self._take(4))[0])

    def u64(self) -> int:
        """Read a u64."""
        return int(struct.unpack(">Q", self._take(8))[0])

    def blob(self, *, max_len: int = MAX_FIELD_BYTES, exact: int | None = None) -> bytes:
        """Read a length-prefixed byte string of at most ``max_len`` (or exactly ``exact``)."""
        n = self.u32()
        if n > max_len or (exact is not None and n != exact):
            raise InvalidMessageError(f"field of {n} bytes out of range")
        return self._take(n)

    def text(self, *, max_len: int = 1024) -> str:
        """Read a length-prefixed UTF-8 string."""
        try:
            return self.blob(max_len=max_len).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidMessageError("string field is not UTF-8") from None

    def count(self, *, max_count: int) -> int:
        """Read a sequence count of at most ``max_count``."""
        n = self.u32()
        if n > max_count:
            raise InvalidMessageError(f"sequence of {n} items exceeds {max_count}")
        return n

    def blobs(self, *, max_count: int, max_len: int) -> tuple[bytes, ...]:
        """Read what :meth:`Writer.blobs` wrote: at most ``max_count`` items of at most
        ``max_len`` bytes each (same checks as :meth:`count` and :meth:`blob`, one pass)."""
        n = self.count(max_count=max_count)
        data, pos = self._data, self._pos
        size = len(data)
        unpack = _U32.unpack_from
        out: list[bytes] = []
        append = out.append
        for _ in range(n):
            if pos + 4 > size:
                raise InvalidMessageError("truncated message")
            (length,) = unpack(data, pos)
            if length > max_len:
                raise InvalidMessageError(f"field of {length} bytes out of range")
            pos += 4
            end = pos + length
            if end > size:
                raise InvalidMessageError("truncated message")
            append(data[pos:end].tobytes())
            pos = end
        self._pos = pos
        return tuple(out)

    def flag(self) -> bool:
        """Read an optional-presence flag (0 or 1)."""
        value = self.u8()
        if value > 1:
            raise InvalidMessageError("presence flag is neither 0 nor 1")
        return value == 1

    def end(self) -> None:
        """Raise unless every byte has been read (no trailing garbage)."""
        if self._pos != len(self._data):
            raise InvalidMessageError(f"{len(self._data) - self._pos} trailing bytes")
