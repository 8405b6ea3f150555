"""Scrub and repair: verify stored documents and restore their full redundancy.

For every document found on the nodes (its current manifest), every
fragment, or a random ``sample`` fraction of them, is fetched and checked
against its digest. Fragments on nodes that are unreachable are bad without
being read. A segment with bad fragments is rebuilt from any k good ones
(checked against the segment digest) and the bad fragments are re-encoded
and written back: onto the original node when it is healthy, else onto a
replacement found further down the document's HRW order (zone rule kept).
The manifest gets the new fragment locations and ``revision + 1`` and is
written to every node now holding fragments; copies on other nodes are
removed. Missing or damaged manifest copies are rewritten as well.

A document written in one round (one segment) whose fragments are mostly absent is a
put torn by a crash, never acknowledged: it is reported as torn, not repaired (there is
nothing to rebuild it from) and not removed (docs/storage.md, "Torn puts").
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from storage.catalog import Copies, is_torn, list_doc_ids, read_copies, write_copies
from storage.codec import SegmentCodec
from storage.errors import ConfigError, NodeError, NodeUnavailableError, StorageError
from storage.fetch import Fetched, collect_fragments, decode_segment, fetch_fragment, sha256_hex
from storage.manifest import FragmentEntry, Manifest, SegmentEntry, manifest_key
from storage.placement import replacement
from storage.workers import run_cpu

if TYPE_CHECKING:
    from storage.store import DocumentStore


@dataclass(frozen=True)
class ScrubReport:
    """What a scrub found and did."""

    documents: int  # documents with a readable manifest
    segments: int
    fragments_checked: int  # fragments verified (read, or known lost with their node)
    fragments_bad: int  # missing, corrupt, truncated or on an unreachable node
    fragments_repaired: int  # rebuilt and written
    segments_unrecoverable: int  # fewer than k good fragments
    documents_unrecoverable: int
    manifests_unreadable: int  # documents listed on the nodes with no valid manifest copy
    manifest_copies_repaired: int  # manifest copies (re)written
    documents_torn: int = 0  # one-round puts interrupted by a crash (never acknowledged)
    problems: tuple[str, ...] = ()  # one line per problem left unrepaired

    @property
    def healthy(self) -> bool:
        """True if nothing bad is left."""
        return not self.problems


@dataclass
class _Tally:
    documents: int = 0
    segments: int = 0
    checked: int = 0
    bad: int = 0
    repaired: int = 0
    unrecoverable_segments: int = 0
    unrecoverable_documents: int = 0
    manifests_unreadable: int = 0
    copies_repaired: int = 0
    torn: int = 0
    problems: list[str] = field(default_factory=list)

    def report(self) -> ScrubReport:
        return ScrubReport(
            documents=self.documents,
            segments=self.segments,
            fragments_checked=self.checked,
            fragments_bad=self.bad,
            fragments_repaired=self.repaired,
            segments_unrecoverable=self.unrecoverable_segments,
            documents_unrecoverable=self.unrecoverable_documents,
            manifests_unreadable=self.manifests_unreadable,
            manifest_copies_repaired=self.copies_repaired,
            documents_torn=self.torn,
            problems=tuple(self.problems),
        )


async def scrub_documents(
    store: DocumentStore,
    *,
    sample: float = 1.0,
    repair: bool = True,
    rng: Callable[[], float] | None = None,
) -> ScrubReport:
    """Scrub every document of ``store``'s pool; repair unless ``repair`` is False.

    ``sample`` in [0, 1]: the fraction of fragments read (``rng``, a function
    returning floats in [0, 1), decides which; inject a seeded one in tests).
    Documents are processed one segment at a time, so memory stays bounded.
    """
    if not 0.0 <= sample <= 1.0:
        raise ConfigError("sample must be within [0, 1]")
    draw = rng if rng is not None else random.Random().random  # noqa: S311 (sampling, not secrets)
    pool = store.pool
    tally = _Tally()
    holders, errors = await list_doc_ids(pool)
    down = {n for n, e in errors.items() if isinstance(e, NodeUnavailableError)}
    for name, err in errors.items():
        if name not in down:
            tally.problems.append(f"node {name} cannot list manifests: {err}")
    for doc_id in sorted(holders):
        copies = await read_copies(pool, doc_id, [n for n in pool.names if n not in down])
        if not copies.valid:
            tally.manifests_unreadable += 1
            tally.problems.append(f"document {doc_id}: no valid manifest copy ({copies.faults})")
            continue
        tally.documents += 1
        await _scrub_document(store, copies, down, sample, repair, draw, tally)
    return tally.report()


async def _scrub_document(
    store: DocumentStore,
    copies: Copies,
    down: set[str],
    sample: float,
    repair: bool,
    draw: Callable[[], float],
    tally: _Tally,
) -> None:
    manifest = copies.current()
    pool = store.pool
    codec = store.codec_for(manifest.codec)
    used = set(manifest.nodes())
    lost = {n for n in used if n in down or not pool.has(n)}
    replacements: dict[str, str | None] = {}

    def target_for(node: str) -> str | None:
        if node not in lost:
            return node
        if node not in replacements:
            chosen = {r for r in replacements.values() if r is not None}
            keep = sorted((used - lost) | chosen)
            replacements[node] = replacement(
                manifest.doc_id,
                pool.zones,
                keep,
                codec.m,
                exclude=sorted(used | lost | down | chosen),
            )
        return replacements[node]

    new_segments: list[SegmentEntry] = []
    doc_unrecoverable = False
    for segment in manifest.segments:
        tally.segments += 1
        outcome = await _scrub_segment(
            pool_codec=(store, codec),
            segment=segment,
            lost=lost,
            sample=sample,
            draw=draw,
            tally=tally,
        )
        good, bad = outcome
        if not bad:
            new_segments.append(segment)
            continue
        if len(good) < codec.k and await is_torn(pool, manifest):
            tally.torn += 1
            tally.problems.append(
                f"document {manifest.doc_id}: torn put, fewer than {codec.k} of its fragments "
                f"exist: interrupted by a crash, never acknowledged (or, if it was, it lost "
                f"more than {codec.m} fragments); left as found"
            )
            return
        if len(good) < codec.k and not repair:
            # Without repair, only a definite verdict counts: more than m bad fragments.
            if len(bad) > codec.m:
                doc_unrecoverable = True
                tally.unrecoverable_segments += 1
            new_segments.append(segment)
            continue
        if not repair:
            new_segments.append(segment)
            continue
        fixed = await _repair_segment(store, codec, segment, good, bad, lost, target_for, tally)
        if fixed is None:
            doc_unrecoverable = True
            new_segments.append(segment)
        else:
            new_segments.append(fixed)
    if doc_unrecoverable:
        tally.unrecoverable_documents += 1
    if not repair:
        return
    changed = tuple(new_segments) != manifest.segments
    current = manifest.with_segments(new_segments, manifest.revision + 1) if changed else manifest
    await _settle_manifest_copies(store, copies, current, down | lost, changed, tally)


async def _scrub_segment(
    *,
    pool_codec: tuple[DocumentStore, SegmentCodec],
    segment: SegmentEntry,
    lost: set[str],
    sample: float,
    draw: Callable[[], float],
    tally: _Tally,
) -> tuple[dict[int, bytes], dict[int, Fetched]]:
    """Verify the sampled fragments of one segment; return the good and the bad ones."""
    store, _codec = pool_codec
    bad: dict[int, Fetched] = {}
    to_read: list[FragmentEntry] = []
    for entry in segment.fragments:
        if entry.node in lost:
            bad[entry.index] = Fetched(entry, None, "node unavailable", unavailable=True)
        elif sample >= 1.0 or draw() < sample:
            to_read.append(entry)
    known_lost = len(bad)
    results = await asyncio.gather(*(fetch_fragment(store.pool, e) for e in to_read))
    good: dict[int, bytes] = {}
    for r in results:
        if r.data is None:
            bad[r.entry.index] = r
            if r.unavailable:
                lost.add(r.entry.node)
        else:
            good[r.entry.index] = r.data
    tally.checked += len(results) + known_lost
    tally.bad += len(bad)
    return good, bad


def _rebuild(
    codec: SegmentCodec, segment: SegmentEntry, good: Mapping[int, bytes], missing: Sequence[int]
) -> list[tuple[bytes, str]]:
    """Check the segment decodes to its digest, then re-encode the missing fragments."""
    decode_segment(codec, segment, good)
    chosen = {i: good[i] for i in sorted(good)[: codec.k]}
    rebuilt = codec.reconstruct(chosen, missing)
    return [(data, sha256_hex(data)) for data in rebuilt]


async def _repair_segment(
    store: DocumentStore,
    codec: SegmentCodec,
    segment: SegmentEntry,
    good: dict[int, bytes],
    bad: dict[int, Fetched],
    lost: set[str],
    target_for: Callable[[str], str | None],
    tally: _Tally,
) -> SegmentEntry | None:
    """Rebuild the bad fragments of one segment; None if it cannot be rebuilt."""
    pool = store.pool
    collected = await collect_fragments(
        pool, segment, codec.k, suspects=lost, known_good=good, known_bad=bad
    )
    newly_bad = {i: f for i, f in collected.faults.items() if i not in bad}
    tally.bad += len(newly_bad)
    tally.checked += len(newly_bad) + (len(collected.good) - len(good))
    for f in newly_bad.values():
        if f.unavailable:
            lost.add(f.entry.node)
    if len(collected.good) < codec.k:
        tally.unrecoverable_segments += 1
        faults = ", ".join(f"{f.entry.node}: {f.fault}" for f in collected.faults.values())
        tally.problems.append(f"segment {segment.index} unrecoverable ({faults})")
        return None
    missing = sorted(collected.faults)
    try:
        rebuilt = await run_cpu(_rebuild, codec, segment, collected.good, missing)
    except StorageError as e:
        tally.unrecoverable_segments += 1
        tally.problems.append(f"segment {segment.index}: {e}")
        return None
    fragments = list(segment.fragments)
    for index, (data, digest) in zip(missing, rebuilt, strict=True):
        entry = segment.fragments[index]
        target = target_for(entry.node)
        if target is None:
            tally.problems.append(
                f"segment {segment.index} fragment {index}: no healthy node left to hold it"
            )
            continue
        try:
            await pool.put(target, entry.key, data)
        except NodeError as e:
            tally.problems.append(f"segment {segment.index} fragment {index}: rewrite failed: {e}")
            continue
        fragments[index] = FragmentEntry(
            index=index, node=target, key=entry.key, sha256=digest, size=len(data)
        )
        tally.repaired += 1
    return SegmentEntry(
        index=segment.index, size=segment.size, sha256=segment.sha256, fragments=tuple(fragments)
    )


async def _settle_manifest_copies(
    store: DocumentStore,
    copies: Copies,
    current: Manifest,
    unreachable: set[str],
    changed: bool,
    tally: _Tally,
) -> None:
    """Put ``current`` on every node holding its fragments; drop copies elsewhere."""
    pool = store.pool
    holders = [n for n in current.nodes() if n not in unreachable and pool.has(n)]
    stale_here = [n for n in holders if copies.valid.get(n) != current]
    if stale_here:
        ok, failures = await write_copies(pool, current, stale_here)
        tally.copies_repaired += len(ok)
        for f in failures:
            tally.problems.append(f"manifest copy of {current.doc_id}: {f}")
        written = len([n for n in holders if copies.valid.get(n) == current]) + len(ok)
        if changed and written < current.codec.m + 1:
            tally.problems.append(
                f"document {current.doc_id}: only {written} copies of the repaired manifest"
            )
            return  # keep the old copies: they still describe readable fragments
    elsewhere = [
        n
        for n in pool.names
        if n not in holders and n not in unreachable and copies.faults.get(n) != "missing"
    ]
    await pool.delete_quietly([(n, manifest_key(current.doc_id)) for n in elsewhere])
