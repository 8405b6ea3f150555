"""Erasure coding of one segment with pyeclib (liberasurecode fragment format).

A segment of bytes becomes ``k + m`` fragments; any ``k`` of them rebuild it.
Fragments are exactly the bytes liberasurecode writes: an 80-byte
self-describing header (index, payload size, original data size, backend id,
magic ``0x0b0c5ecc``, ...) followed by the payload, so any liberasurecode
install can decode them without this code.

The preferred backend is ISA-L's Cauchy Reed-Solomon (``isa_l_rs_cauchy``): a
Cauchy matrix is MDS for every (k, m), so every erasure pattern of up to m
fragments decodes (ISA-L's Vandermonde construction is not guaranteed
invertible for every pattern), and it is the fastest backend in pyeclib's
wheels. Where ISA-L cannot load, ``liberasurecode_rs_vand`` (pure C, always
present) is used. A backend is accepted only after a probe encode/decode
round trip succeeds.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from storage.errors import ConfigError

PREFERRED_EC_TYPE = "isa_l_rs_cauchy"
FALLBACK_EC_TYPE = "liberasurecode_rs_vand"
SUPPORTED_EC_TYPES = (PREFERRED_EC_TYPE, FALLBACK_EC_TYPE, "isa_l_rs_vand")
MAX_FRAGMENTS = 16

FRAGMENT_HEADER_SIZE = 80
FRAGMENT_MAGIC = 0x0B0C5ECC
# idx u32, size u32, frag_backend_metadata_size u32, orig_data_size u64 (packed, little-endian
# on every platform we run on: liberasurecode writes host byte order).
_HEADER_PREFIX = struct.Struct("<IIIQ")
_MAGIC_OFFSET = 59
_METADATA_CHECKSUM_OFFSET = 67


@dataclass(frozen=True)
class FragmentHeader:
    """The fields of a liberasurecode fragment header this package relies on."""

    index: int
    payload_size: int
    orig_data_size: int


def parse_fragment_header(fragment: bytes) -> FragmentHeader:
    """Parse the liberasurecode header at the start of ``fragment``.

    Precondition: none; raises ValueError if the bytes are too short, the magic
    or the header's CRC-32 is wrong, or the payload size disagrees with the
    fragment's length.
    """
    if len(fragment) < FRAGMENT_HEADER_SIZE:
        raise ValueError(f"fragment of {len(fragment)} bytes is shorter than its header")
    index, size, backend_meta, orig = _HEADER_PREFIX.unpack_from(fragment, 0)
    (magic,) = struct.unpack_from("<I", fragment, _MAGIC_OFFSET)
    if magic != FRAGMENT_MAGIC:
        raise ValueError(f"bad fragment magic {magic:#x} (perhaps not a liberasurecode fragment)")
    (checksum,) = struct.unpack_from("<I", fragment, _METADATA_CHECKSUM_OFFSET)
    if checksum != zlib.crc32(fragment[:_MAGIC_OFFSET]):
        raise ValueError("fragment header checksum mismatch (corrupt header)")
    if FRAGMENT_HEADER_SIZE + size + backend_meta != len(fragment):
        raise ValueError("fragment length disagrees with its header (perhaps truncated)")
    return FragmentHeader(index=index, payload_size=size, orig_data_size=orig)


def validate_parameters(k: int, m: int) -> None:
    """Raise ConfigError unless 1 <= m <= k and k + m <= 16."""
    if not (isinstance(k, int) and isinstance(m, int)):
        raise ConfigError("k and m must be integers")
    if not (1 <= m <= k and k + m <= MAX_FRAGMENTS):
        raise ConfigError(f"need 1 <= m <= k and k + m <= {MAX_FRAGMENTS}; got k={k}, m={m}")


def _make_driver(k: int, m: int, ec_type: str) -> Any:
    from pyeclib.ec_iface import ECDriver

    return ECDriver(k=k, m=m, ec_type=ec_type)


def _probe(k: int, m: int, ec_type: str) -> bool:
    """True if the backend loads and round-trips a small segment with m erasures."""
    try:
        driver = _make_driver(k, m, ec_type)
        data = bytes(range(256)) * 4
        fragments = driver.encode(data)
        return bool(driver.decode(fragments[m:]) == data)
    except Exception:  # any load or runtime failure means: not usable here
        return False


class SegmentCodec:
    """Encode and decode segments with one liberasurecode backend.

    Thread-safe: each thread gets its own pyeclib driver, so encoding and
    decoding can run in worker threads (pyeclib holds the GIL while it works,
    but hashing in other threads proceeds meanwhile).
    """

    def __init__(self, k: int, m: int, ec_type: str | None = None) -> None:
        """Build a codec. ``ec_type=None`` picks the best backend that passes a probe.

        Raises ConfigError for invalid (k, m), an unknown ec_type, or a backend
        that cannot load on this machine.
        """
        validate_parameters(k, m)
        if ec_type is None:
            candidates: Sequence[str] = (PREFERRED_EC_TYPE, FALLBACK_EC_TYPE)
        elif ec_type in SUPPORTED_EC_TYPES:
            candidates = (ec_type,)
        else:
            raise ConfigError(f"unsupported ec_type {ec_type!r}; use one of {SUPPORTED_EC_TYPES}")
        chosen = next((c for c in candidates if _probe(k, m, c)), None)
        if chosen is None:
            raise ConfigError(f"no usable erasure-coding backend among {tuple(candidates)}")
        self.k = k
        self.m = m
        self.ec_type = chosen
        self._local = threading.local()

    @property
    def n(self) -> int:
        """Number of fragments per segment (k + m)."""
        return self.k + self.m

    def _driver(self) -> Any:
        driver = getattr(self._local, "driver", None)
        if driver is None:
            driver = _make_driver(self.k, self.m, self.ec_type)
            self._local.driver = driver
        return driver

    def encode(self, segment: bytes) -> list[bytes]:
        """Encode a non-empty segment into k + m fragments (fragment i at position i)."""
        if not segment:
            raise ValueError("cannot encode an empty segment")
        fragments: list[bytes] = self._driver().encode(bytes(segment))
        return fragments

    def decode(self, fragments: Mapping[int, bytes]) -> bytes:
        """Rebuild a segment from at least k intact fragments keyed by index.

        Precondition: every fragment given is intact (its digest was checked).
        """
        if len(fragments) < self.k:
            raise ValueError(f"need {self.k} fragments, got {len(fragments)}")
        data: bytes = self._driver().decode([fragments[i] for i in sorted(fragments)])
        return data

    def reconstruct(self, fragments: Mapping[int, bytes], missing: Sequence[int]) -> list[bytes]:
        """Rebuild the fragments with indices ``missing`` from at least k intact ones."""
        if len(fragments) < self.k:
            raise ValueError(f"need {self.k} fragments, got {len(fragments)}")
        rebuilt: list[bytes] = self._driver().reconstruct(
            [fragments[i] for i in sorted(fragments)], list(missing)
        )
        return rebuilt
