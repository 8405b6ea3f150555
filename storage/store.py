"""The document store: put, read, recover and delete erasure-coded documents.

A document is cut into segments; each segment is encoded into k + m
fragments; fragment i of every segment goes to node i of the document's
placement (rendezvous hashing over the pool). Once every fragment is written,
the manifest is written to every placement node (a document of one segment: in
the same round as its fragments, see docs/storage.md "Torn puts"); a document
is visible only through its manifest, so a put that fails at any point deletes
what it wrote and leaves nothing visible.

Write policy (decided, see docs/storage.md): a put needs **all** k + m
fragments of every segment to land, so every acknowledged document starts
with full redundancy; a node failing during a put fails the put
(WriteFailedError, after cleanup). The manifest needs at least m + 1 copies.

Concurrency: hashing and erasure coding run in worker threads (hashlib
releases the GIL; pyeclib does not, but encodes at GB/s, see workers.py),
node I/O on the event loop; a bounded number of segments is in flight, so
memory stays bounded whatever the document size.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from storage.catalog import copy_outcomes, copy_writes, is_torn, list_doc_ids, read_copies
from storage.codec import SegmentCodec
from storage.errors import (
    ConfigError,
    DigestMismatchError,
    IntegrityError,
    ManifestError,
    SegmentFault,
    StorageError,
    UnrecoverableError,
    WriteFailedError,
)
from storage.fetch import collect_fragments, decode_segment, sha256_hex
from storage.manifest import (
    CodecInfo,
    FragmentEntry,
    Manifest,
    SegmentEntry,
    fragment_key,
    manifest_key,
    validate_doc_id,
)
from storage.nodes.base import StorageNode
from storage.placement import place
from storage.pool import NodePool
from storage.repair import ScrubReport, scrub_documents
from storage.source import Source, iter_segments
from storage.workers import run_cpu_on, tune_allocator

DEFAULT_SEGMENT_SIZE = 8 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
Clock = Callable[[], datetime]
RandomBytes = Callable[[int], bytes]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _encode_and_hash(codec: SegmentCodec, segment: bytes) -> list[tuple[bytes, str]]:
    """Encode a segment and hash each fragment (one worker-thread job)."""
    return [(f, sha256_hex(f)) for f in codec.encode(segment)]


def _hash_segment(doc_hasher: Any, segment: bytes) -> str:
    """Feed the document digest and return the segment's digest (serial, in order)."""
    doc_hasher.update(segment)
    return sha256_hex(segment)


class _SegmentFailed(Exception):
    """Internal: one segment of a read could not be rebuilt."""

    def __init__(self, fault: SegmentFault) -> None:
        super().__init__(fault)
        self.fault = fault


class DocumentStore:
    """Erasure-coded documents over a pool of independent storage nodes."""

    def __init__(
        self,
        nodes: Sequence[StorageNode],
        *,
        k: int = 4,
        m: int = 2,
        segment_size: int = DEFAULT_SEGMENT_SIZE,
        ec_type: str | None = None,
        node_timeout: float = 30.0,
        max_inflight_segments: int = 3,
        read_ahead: int = 2,
        clock: Clock = _utc_now,
        random_bytes: RandomBytes = os.urandom,
        tune_malloc: bool = True,
    ) -> None:
        """Configure a store. Raises ConfigError for invalid codec parameters,
        duplicate node names, or a pool of fewer than k + m nodes.

        ``ec_type=None`` picks ISA-L Cauchy Reed-Solomon, or liberasurecode's
        own Reed-Solomon where ISA-L cannot load. ``clock`` and ``random_bytes``
        are injected for tests (creation time, generated document ids).
        ``tune_malloc`` applies :func:`storage.workers.tune_allocator` (process-wide).
        """
        if tune_malloc:
            tune_allocator()
        self._codec = SegmentCodec(k, m, ec_type)
        if segment_size < 1:
            raise ConfigError("segment_size must be positive")
        self._pool = NodePool(nodes, node_timeout)
        if len(self._pool) < k + m:
            raise ConfigError(
                f"k + m = {k + m} fragments need as many nodes; pool has {len(nodes)}"
            )
        if max_inflight_segments < 1 or read_ahead < 0:
            raise ConfigError("max_inflight_segments must be >= 1 and read_ahead >= 0")
        self.segment_size = segment_size
        self._max_inflight = max_inflight_segments
        self._read_ahead = read_ahead
        self._clock = clock
        self._random_bytes = random_bytes
        self._codecs: dict[tuple[str, int, int], SegmentCodec] = {
            (self._codec.ec_type, k, m): self._codec
        }
        self._codec_info = CodecInfo(ec_type=self._codec.ec_type, k=k, m=m)
        self._created_second: float | None = None  # of the last ``created`` text made
        self._created_text = ""

    @property
    def k(self) -> int:
        """Fragments needed to rebuild a segment."""
        return self._codec.k

    @property
    def m(self) -> int:
        """Fragments per segment that may be lost."""
        return self._codec.m

    @property
    def ec_type(self) -> str:
        """The liberasurecode backend new documents are encoded with."""
        return self._codec.ec_type

    @property
    def pool(self) -> NodePool:
        """The nodes of this store (for repair and tests)."""
        return self._pool

    def codec_for(self, info: CodecInfo) -> SegmentCodec:
        """The codec a manifest names (reads always use the manifest's codec)."""
        key = (info.ec_type, info.k, info.m)
        if key not in self._codecs:
            try:
                self._codecs[key] = SegmentCodec(info.k, info.m, info.ec_type)
            except ConfigError as e:
                raise ManifestError(f"cannot decode with {info}: {e}") from e
        return self._codecs[key]

    def _new_doc_id(self) -> str:
        return self._random_bytes(16).hex()

    def _created(self) -> str:
        """The clock's time as a manifest's ``created`` (made once per second: strftime
        costs more than the rest of a small put's manifest)."""
        now = self._clock()
        second = now.timestamp() // 1
        if second != self._created_second:
            self._created_text = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            self._created_second = second
        return self._created_text

    # ------------------------------------------------------------------ put

    async def put(
        self,
        source: Source,
        *,
        doc_id: str | None = None,
        expected_sha256: str | None = None,
        encryption: Mapping[str, Any] | Callable[[], Mapping[str, Any]] | None = None,
        new_id: bool = False,
        on_digest: Callable[[str], None] | None = None,
    ) -> Manifest:
        """Store a document; return its manifest once every fragment and the manifest landed.

        ``source``: bytes, a binary file object, or an (async) iterable of byte
        chunks; it is streamed, never held whole. ``doc_id``: 1..64 of
        ``[a-z0-9-]``; generated when None; an id that already has a manifest is
        refused. ``new_id``: the caller vouches that ``doc_id`` was just drawn at
        random (128 bits or more) and never used, so the look-up that refuses an
        existing id (a stat on every placement node) is skipped; a generated id
        needs no such look-up either. Never pass it for an id that came from
        elsewhere: storing under an existing id would replace that document's
        manifest. ``expected_sha256``: if given and the stream's SHA-256
        differs, DigestMismatchError after everything written is removed
        (ValueError if it is not 64 hex digits). ``on_digest``: called once, on the
        event loop, with the document's SHA-256 (hex) as soon as the whole source is
        read and hashed and matched ``expected_sha256``: before the writes are
        durable, so the put may still fail afterwards; never called when it fails
        before (source error, digest mismatch). An exception it raises fails the put
        (nothing left visible). Any other failure: WriteFailedError, nothing left
        visible. ``encryption``: the manifest's
        ``encryption`` object when the source is sealed (docs/sealing.md), or a
        callable returning it once the source is exhausted (for parameters known only
        then, such as the plaintext size); size and digest are of the stored bytes.
        """
        if doc_id is None:
            doc_id, new_id = self._new_doc_id(), True
        else:
            doc_id = validate_doc_id(doc_id)
        if expected_sha256 is not None:
            expected_sha256 = expected_sha256.lower()
            if not _HEX64.fullmatch(expected_sha256):
                raise ValueError("expected_sha256 must be 64 hex digits")
        codec = self._codec
        placement = place(doc_id, self._pool.zones, codec.n, max_per_zone=codec.m)
        if not new_id:
            await self._refuse_existing(doc_id, placement)

        doc_hasher = hashlib.sha256()
        tasks: list[asyncio.Task[SegmentEntry]] = []
        gate = asyncio.Semaphore(self._max_inflight)
        failed: list[asyncio.Task[SegmentEntry]] = []

        def finished(task: asyncio.Task[SegmentEntry]) -> None:
            gate.release()
            if not task.cancelled() and task.exception() is not None:
                failed.append(task)

        def launch(index: int, segment: bytes, digest: str) -> None:
            task = asyncio.create_task(
                self._store_segment(placement, doc_id, index, segment, digest)
            )
            task.add_done_callback(finished)
            tasks.append(task)

        size = 0
        read_all = False  # the whole source was read and hashed (no early stop)
        # The newest segment is written only once the next one (or the end) is read: a
        # document of one segment is then written in one round with its manifest.
        held: tuple[int, bytes, str] | None = None
        one_round = False
        cut = iter_segments(source, self.segment_size)
        try:
            try:
                async for segment in cut:
                    await gate.acquire()  # a held segment counts as in flight
                    if failed:  # stop reading: the put has already failed
                        gate.release()
                        break
                    if held is not None:
                        launch(*held)
                    size += len(segment)
                    digest = await run_cpu_on(len(segment), _hash_segment, doc_hasher, segment)
                    held = (len(tasks), segment, digest)
                    del segment  # only ``held`` holds it now
                else:
                    read_all = True
            except StorageError:
                raise
            except Exception as e:
                raise WriteFailedError(f"reading the source of {doc_id} failed: {e}", [e]) from e
            finally:
                await cut.aclose()  # finalise the caller's source now, even after a break
            if not read_all:
                held = None
            one_round = held is not None and not tasks
            if held is not None and tasks:
                launch(*held)
                held = None
            calculated = doc_hasher.hexdigest()
            if read_all:
                # Checked as soon as the source is read, not after the writes: a mismatch
                # stops the put at once, and on_digest learns the digest early.
                if expected_sha256 is not None and expected_sha256 != calculated:
                    raise DigestMismatchError(expected_sha256, calculated)
                if on_digest is not None:
                    on_digest(calculated)
            fragment_writes: list[tuple[str, str, bytes]] = []
            if held is not None:
                entry, blobs = await self._encode_segment(placement, doc_id, *held)
                held = None
                segments = [entry]
                fragment_writes = [
                    (f.node, f.key, blob) for f, blob in zip(entry.fragments, blobs, strict=True)
                ]
            else:
                segments = await self._segments_written(doc_id, tasks)
            manifest = Manifest(
                doc_id=doc_id,
                size=size,
                sha256=calculated,
                codec=self._codec_info,
                segment_size=self.segment_size,
                segments=tuple(segments),
                created=self._created(),
                encryption=encryption() if callable(encryption) else encryption,
            )
            # One round for a one-segment document: its fragments and manifest copies are
            # written together (one group commit per pack node). A crash in that round
            # can leave copies without all the fragments: docs/storage.md, "Torn puts".
            results = await self._pool.put_all(fragment_writes + copy_writes(manifest, placement))
            errors = [r for r in results[: len(fragment_writes)] if r is not None]
            if errors:
                raise WriteFailedError(
                    f"document {doc_id} not stored: {len(errors)} fragment(s) failed: {errors[0]}",
                    errors,
                ) from errors[0]
            ok, failures = copy_outcomes(placement, results[len(fragment_writes) :])
            if len(ok) < codec.m + 1:
                raise WriteFailedError(
                    f"document {doc_id}: only {len(ok)} manifest copies written, "
                    f"{codec.m + 1} needed",
                    failures,
                )
            return manifest
        except BaseException:
            written = max(len(tasks), 1 if one_round else 0)
            await asyncio.shield(self._discard(doc_id, placement, tasks, written))
            raise

    async def _segments_written(
        self, doc_id: str, tasks: Sequence[asyncio.Task[SegmentEntry]]
    ) -> list[SegmentEntry]:
        """The entries of the segments the tasks wrote, in order; WriteFailedError if any
        failed."""
        results = await asyncio.gather(*tasks, return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise WriteFailedError(
                f"document {doc_id} not stored: {len(errors)} segment(s) failed: {errors[0]}",
                errors,
            ) from errors[0]
        return [r for r in results if isinstance(r, SegmentEntry)]

    async def _refuse_existing(self, doc_id: str, placement: Sequence[str]) -> None:
        key = manifest_key(doc_id)
        results = await self._pool.stat_all(placement, key)
        if any(r is not None and not isinstance(r, BaseException) for r in results):
            raise WriteFailedError(f"document {doc_id} already exists; documents are immutable")

    async def _encode_segment(
        self, placement: Sequence[str], doc_id: str, index: int, segment: bytes, digest: str
    ) -> tuple[SegmentEntry, list[bytes]]:
        """The segment's entry and its fragments (encoded, hashed, placed; not written)."""
        fragments = await run_cpu_on(len(segment), _encode_and_hash, self._codec, segment)
        entry = SegmentEntry(
            index=index,
            size=len(segment),
            sha256=digest,
            fragments=tuple(
                FragmentEntry(
                    index=i,
                    node=node,
                    key=fragment_key(doc_id, index, i),
                    sha256=sha,
                    size=len(data),
                )
                for i, (node, (data, sha)) in enumerate(zip(placement, fragments, strict=True))
            ),
        )
        return entry, [data for data, _ in fragments]

    async def _store_segment(
        self, placement: Sequence[str], doc_id: str, index: int, segment: bytes, digest: str
    ) -> SegmentEntry:
        entry, blobs = await self._encode_segment(placement, doc_id, index, segment, digest)
        del segment  # free it while the fragments are written: memory is the bound
        results = await self._pool.put_all(
            [(f.node, f.key, blob) for f, blob in zip(entry.fragments, blobs, strict=True)]
        )
        for r in results:
            if isinstance(r, BaseException):
                raise r
        return entry

    async def _discard(
        self,
        doc_id: str,
        placement: Sequence[str],
        tasks: Sequence[asyncio.Task[SegmentEntry]],
        segments: int,
    ) -> None:
        """Remove everything a failed put of up to ``segments`` segments may have written
        (waits for its writes first)."""
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        doomed = [(n, manifest_key(doc_id)) for n in placement]
        doomed += [
            (node, fragment_key(doc_id, s, i))
            for s in range(segments)
            for i, node in enumerate(placement)
        ]
        await self._pool.delete_quietly(doomed)

    # ----------------------------------------------------------------- read

    async def read(
        self, manifest: Manifest, start: int = 0, end: int | None = None
    ) -> AsyncIterator[bytes]:
        """Yield the document's bytes ``[start, end)``, verified, segment by segment.

        Only the segments overlapping the range are fetched. Every fragment is
        checked against its digest and every rebuilt segment against its; a
        full read also checks the document digest at the end. Raises
        UnrecoverableError (naming segments and nodes) when a segment has
        fewer than k good fragments; wrong bytes are never yielded.
        """
        end = manifest.size if end is None else end
        if not 0 <= start <= end <= manifest.size:
            raise ValueError(f"range [{start}, {end}) outside document of {manifest.size} bytes")
        if start == end:
            return
        codec = self.codec_for(manifest.codec)
        first = start // manifest.segment_size
        last = (end - 1) // manifest.segment_size
        full = start == 0 and end == manifest.size
        doc_hasher = hashlib.sha256() if full else None
        suspects: set[str] = set()
        window: list[asyncio.Task[bytes]] = []
        upcoming = iter(range(first, last + 1))

        def schedule() -> None:
            index = next(upcoming, None)
            if index is not None:
                window.append(
                    asyncio.create_task(
                        self._read_segment(codec, manifest.segments[index], suspects)
                    )
                )

        for _ in range(self._read_ahead + 1):
            schedule()
        current = first
        try:
            while window:
                task = window.pop(0)
                try:
                    data = await task
                except _SegmentFailed as failure:
                    raise await self._unrecoverable(manifest, failure, window) from None
                schedule()
                offset = current * manifest.segment_size
                current += 1
                lo = max(start - offset, 0)
                hi = min(end - offset, len(data))
                if doc_hasher is not None:
                    await run_cpu_on(len(data), doc_hasher.update, data)
                yield data if (lo == 0 and hi == len(data)) else data[lo:hi]
            if doc_hasher is not None and doc_hasher.hexdigest() != manifest.sha256:
                raise IntegrityError(
                    f"document {manifest.doc_id}: SHA-256 of the whole document does not match"
                )
        finally:
            for t in window:
                t.cancel()
            await asyncio.gather(*window, return_exceptions=True)

    async def _unrecoverable(
        self, manifest: Manifest, failure: _SegmentFailed, window: list[asyncio.Task[bytes]]
    ) -> UnrecoverableError:
        """The error for a failed read, naming every failed segment already in flight."""
        faults = [failure.fault]
        results = await asyncio.gather(*window, return_exceptions=True)
        window.clear()
        faults += [r.fault for r in results if isinstance(r, _SegmentFailed)]
        return UnrecoverableError(manifest.doc_id, faults)

    async def _read_segment(
        self, codec: SegmentCodec, segment: SegmentEntry, suspects: set[str]
    ) -> bytes:
        collected = await collect_fragments(self._pool, segment, codec.k, suspects=suspects)
        for fetched in collected.faults.values():
            if fetched.unavailable:
                suspects.add(fetched.entry.node)
        if len(collected.good) < codec.k:
            raise _SegmentFailed(
                SegmentFault(
                    segment=segment.index,
                    faults={f.entry.node: str(f.fault) for f in collected.faults.values()},
                )
            )
        return await run_cpu_on(segment.size, decode_segment, codec, segment, collected.good)

    async def read_bytes(self, manifest: Manifest) -> bytes:
        """The whole document in memory (for small documents and tests)."""
        return b"".join([chunk async for chunk in self.read(manifest)])

    # ------------------------------------------------------------- manifests

    async def load_manifest(self, doc_id: str) -> Manifest:
        """The current manifest of ``doc_id`` from the nodes alone (highest valid revision).

        Raises ManifestError if no node holds a valid copy.
        """
        validate_doc_id(doc_id)
        return (await read_copies(self._pool, doc_id)).current()

    async def recover_manifests(self) -> AsyncIterator[Manifest]:
        """Yield the current manifest of every document found on the nodes, by doc_id.

        Documents whose copies are all damaged are skipped (scrub reports them), and so
        are puts torn by a crash, never acknowledged (docs/storage.md, "Torn puts").
        """
        holders, _errors = await list_doc_ids(self._pool)
        for doc_id in sorted(holders):
            copies = await read_copies(self._pool, doc_id)
            if copies.valid:
                manifest = copies.current()
                if not await is_torn(self._pool, manifest):
                    yield manifest

    # ---------------------------------------------------------------- delete

    async def delete(self, manifest: Manifest) -> None:
        """Remove a document: its manifest copies on every node first, then its fragments.

        Every deletion is attempted; if some failed (a node down), the first
        failure is raised afterwards (leftover fragments are invisible).
        """
        key = manifest_key(manifest.doc_id)
        targets = [(n, key) for n in self._pool.names]
        targets += [
            (f.node, f.key)
            for s in manifest.segments
            for f in s.fragments
            if self._pool.has(f.node)
        ]
        copies = len(self._pool)
        # Manifest copies first: once they are gone the document is invisible.
        failures = await self._pool.delete_all(targets[:copies])
        failures += await self._pool.delete_all(targets[copies:])
        if failures:
            raise failures[0]

    # ----------------------------------------------------------------- scrub

    async def scrub(
        self,
        *,
        sample: float = 1.0,
        repair: bool = True,
        rng: Callable[[], float] | None = None,
    ) -> ScrubReport:
        """Verify every document's fragments (or a ``sample`` fraction) and repair them.

        See :func:`storage.repair.scrub_documents`.
        """
        return await scrub_documents(self, sample=sample, repair=repair, rng=rng)

    async def close(self) -> None:
        """Close every node."""
        with contextlib.suppress(Exception):
            await self._pool.close()
