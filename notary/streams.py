"""Log streams: a broker's log as a hash chain of anchored segments, over NotaryService.

Each segment is stored as a ``broker_log`` document and anchored as a ``log_segment``
entry (notary.log_entry). The service keeps each stream's **head**: the last accepted
segment's seq, its content SHA-256, its entry hash and the stream offset where the next
segment must start. Appending follows one rule (docs/log-streams.md):

* segment ``seq`` is accepted only when the head is ``seq - 1``, its ``start`` is the
  head's end offset and its ``prev_sha256`` the head's content SHA-256 (zeros for seq 0);
  the entry's ``prev`` is then the head's entry hash;
* a segment for a seq already accepted with the same content and range returns the
  existing segment (idempotent: a client that crashed before recording the answer can
  resend); with different content or range it is refused (409 ``segment_conflict``);
* a segment that arrives before its predecessor was accepted waits for it (so a client
  may keep several segments in flight). After ``order_timeout`` seconds without the
  predecessor: 409 ``segment_out_of_order``.

Only linking is ordered, not storing. Each segment's body is stored first, unordered;
then (the upload's ``on_stored`` hook, which holds no database connection) it waits until
its predecessor is *linked* in this process, links to it (builds its entry, whose ``prev``
is the predecessor's entry hash) and joins its stream's commit queue. One committer per
stream commits the queued segments, consecutive ones together: one transaction moves the
head from the group's predecessor to its last segment, on condition that the database's
head is that predecessor (seq and entry hash), and acknowledges the group's rows. A
segment answers once its group committed. A failed group fails the segments queued after
it too (they are linked to it); when the condition failed (another replica of the API
moved the head), each of them links again, to the database's head.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from notary import errors
from notary.index.models import Document, LogSegment, LogStream
from notary.log_entry import GENESIS_PREV, log_segment_entry
from notary.metadata import DocumentKind, UploadMetadata
from notary.receipt import Receipt
from notary.service import NotaryService, Principal
from storage import Manifest

STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
ZERO_SHA256 = "0" * 64
MAX_LIST = 1000


class StreamNotFoundError(errors.NotFoundError):
    """No stream of that name for this organisation."""

    code, title = "stream_not_found", "Stream not found"


class SegmentConflictError(errors.NotaryError):
    """A different segment was already accepted for this seq."""

    status, code, title = 409, "segment_conflict", "Segment conflicts with the stream"


class SegmentOutOfOrderError(errors.NotaryError):
    """The predecessor of this segment was not accepted in time."""

    status, code, title = 409, "segment_out_of_order", "Segment out of order"


class SegmentLinkError(errors.NotaryError):
    """The segment does not continue the head (start offset or previous digest)."""

    status, code, title = 409, "segment_link_mismatch", "Segment does not continue the stream"


class _Accepted(Exception):
    """Internal: another request accepted this seq meanwhile; compare with it."""


def _iso(t: datetime) -> str:
    if t.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def check_stream_name(name: str) -> str:
    """``name`` if it is a valid stream name, else BadRequestError (1-128 of [A-Za-z0-9._-])."""
    if not STREAM_NAME.fullmatch(name):
        raise errors.BadRequestError(
            f"invalid stream name {name[:140]!r}: 1-128 letters, digits and ._- "
            "(starting with a letter or digit)"
        )
    return name


@dataclass(frozen=True)
class SegmentMeta:
    """What a client says of a segment it appends (validated by the HTTP layer)."""

    seq: int
    start: int
    end: int
    sha256: str  # lowercase hex of the content
    prev_sha256: str  # content SHA-256 of segment seq-1 (64 zeros for seq 0)
    cut_at: datetime


@dataclass(frozen=True)
class SegmentView:
    """A segment as the API shows it."""

    seq: int
    start: int
    end: int
    sha256: str
    entry_hash: str
    document_id: str
    status: str
    cut_at: datetime
    leaf_index: int | None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the API."""
        return {
            "seq": self.seq,
            "start": self.start,
            "end": self.end,
            "sha256": self.sha256,
            "entry_hash": self.entry_hash,
            "document_id": self.document_id,
            "status": self.status,
            "cut_at": _iso(self.cut_at),
            "leaf_index": self.leaf_index,
        }


@dataclass(frozen=True)
class StreamView:
    """A stream and its head as the API shows them."""

    id: str
    name: str
    created_at: datetime
    head_seq: int
    head_end: int
    head_sha256: str | None
    head_entry_hash: str | None
    head_at: datetime | None
    anchored_seq: int  # every segment up to this seq is anchored (-1: none yet)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the API."""
        return {
            "id": self.id,
            "name": self.name,
            "created_at": _iso(self.created_at),
            "head": {
                "seq": self.head_seq,
                "end": self.head_end,
                "sha256": self.head_sha256,
                "entry_hash": self.head_entry_hash,
                "at": _iso(self.head_at) if self.head_at else None,
            },
            "anchored_seq": self.anchored_seq,
        }


@dataclass(frozen=True)
class _Head:
    """A stream's committed head: the last accepted seq (-1: none), the offset where the
    next segment starts, and the last segment's content SHA-256 and entry hash."""

    seq: int
    end: int
    sha256: str | None
    entry_hash: str | None

    @classmethod
    def of(cls, row: LogStream) -> _Head:
        return cls(row.head_seq, row.head_end, row.head_sha256, row.head_entry_hash)


def _segment_view(seg: LogSegment, doc: Document) -> SegmentView:
    return SegmentView(
        seq=seg.seq,
        start=seg.start_offset,
        end=seg.end_offset,
        sha256=seg.sha256,
        entry_hash=seg.entry_hash,
        document_id=seg.document_id,
        status=doc.status,
        cut_at=seg.cut_at,
        leaf_index=doc.leaf_index,
    )


class _Stale(Exception):
    """Internal: the stream's head in the database is not the one a group continues."""


class _Relink(Exception):
    """Internal: the segment this one was linked to was not committed; link again."""


@dataclass
class _Link:
    """A stored segment linked to its predecessor (its entry built), awaiting its commit."""

    meta: SegmentMeta
    doc_id: str
    columns: dict[str, Any]  # the document row's acknowledging columns (entry included)
    prev_entry_hash: str | None  # entry hash of the segment it continues (None for seq 0)
    head: _Head  # the stream's head once it is committed
    done: asyncio.Future[None]


@dataclass
class _Chain:
    """What this process knows of one stream's appends: the newest committed head it saw
    (never ahead of the database), the last linked segment (``tail``; the head when no
    segment awaits its commit), the linked segments not yet committed by seq, and those
    of them not yet in a transaction (in seq order)."""

    head: _Head
    tail: _Head
    pending: dict[int, _Link] = field(default_factory=dict)
    queue: list[_Link] = field(default_factory=list)
    committer: asyncio.Task[None] | None = None


class StreamService:
    """Appends to and reads log streams; see the module docstring for the rules."""

    def __init__(
        self,
        notary: NotaryService,
        *,
        order_timeout: float = 30.0,
        poll: float = 0.25,
        max_group: int = 512,
    ) -> None:
        """``order_timeout``: how long a stored segment waits for its predecessor; ``poll``:
        how often a waiting segment reads the head from the database (a head committed by
        another replica of the API; this process's own links wake it at once);
        ``max_group``: most segments of a stream committed in one transaction."""
        self.notary = notary
        self.order_timeout = order_timeout
        self._poll = poll
        self._max_group = max_group
        # Stream ids by (org, name): a stream's id never changes once created.
        self._ids: dict[tuple[str, str], str] = {}
        self._chains: dict[str, _Chain] = {}
        # Segments waiting for their predecessor, by (stream id, predecessor's seq): the
        # link of that seq (or a reset of the stream's tail) wakes exactly them.
        self._waiters: dict[tuple[str, int], set[asyncio.Future[None]]] = {}
        self.commits = 0  # group transactions committed (for tests and benchmarks)

    # ---------------------------------------------------------------- append

    async def append(
        self, who: Principal, name: str, meta: SegmentMeta, body: AsyncIterable[bytes]
    ) -> tuple[SegmentView, bool]:
        """Append segment ``meta.seq`` (content ``body``) to stream ``name`` of the caller's
        organisation, creating the stream at seq 0. Returns the segment and whether it is
        new (False: the identical segment was already accepted)."""
        check_stream_name(name)
        self._check_meta(meta)
        stream_id, chain = await self._stream_for_append(who, name)
        if meta.seq <= chain.head.seq:
            return await self._existing(stream_id, name, meta), False
        holder: dict[str, bytes] = {}
        try:
            doc = await self.notary.upload(
                who,
                UploadMetadata(
                    kind=DocumentKind.BROKER_LOG,
                    filename=f"{name}.{meta.seq}.log",
                    media_type="text/plain",
                    sha256=meta.sha256,
                ),
                self._sized(meta, body),
                entry_for=lambda salt, sha: self._entry(stream_id, meta, holder, salt, sha),
                on_stored=lambda doc_id, manifest, columns: self._link(
                    stream_id, chain, meta, holder, doc_id, manifest, columns
                ),
            )
        except _Accepted:
            return await self._existing(stream_id, name, meta), False
        view = SegmentView(
            seq=meta.seq,
            start=meta.start,
            end=meta.end,
            sha256=meta.sha256,
            entry_hash=holder["entry_hash"].hex(),
            document_id=doc.id,
            status=doc.status,
            cut_at=meta.cut_at,
            leaf_index=doc.leaf_index,
        )
        return view, True

    @staticmethod
    def _check_meta(meta: SegmentMeta) -> None:
        if not 0 <= meta.start <= meta.end:
            raise errors.BadRequestError("need 0 <= start <= end")
        if meta.seq == 0 and (meta.start != 0 or meta.prev_sha256 != ZERO_SHA256):
            raise SegmentLinkError(
                "segment 0 must start at offset 0 with a previous SHA-256 of 64 zeros"
            )

    async def _stream_for_append(self, who: Principal, name: str) -> tuple[str, _Chain]:
        """The stream's id and what this process knows of it, creating the stream if it is
        new. No database read once known: if another replica moved the head further, the
        head's conditional update finds out (``_Stale``)."""
        stream_id = self._ids.get((who.org, name))
        if stream_id is not None and stream_id in self._chains:
            return stream_id, self._chains[stream_id]
        async with self.notary.sessions() as s:
            row = await self._find(s, who.org, name)
        if row is None:
            try:
                async with self.notary.sessions.begin() as s:
                    row = LogStream(
                        id=self.notary._random(16).hex(),
                        org=who.org,
                        name=name,
                        created_at=self.notary._clock(),
                        head_seq=-1,
                        head_end=0,
                    )
                    s.add(row)
            except IntegrityError:  # created concurrently by another request
                async with self.notary.sessions() as s:
                    row = await self._find(s, who.org, name)
                assert row is not None
        self._ids[(who.org, name)] = row.id
        self._saw(row.id, _Head.of(row))
        return row.id, self._chains[row.id]

    def _saw(self, stream_id: str, head: _Head) -> None:
        """Remember ``head`` as committed (unless a newer one is known). A head beyond the
        tail was committed by another replica: the next segment links to it."""
        chain = self._chains.get(stream_id)
        if chain is None:
            self._chains[stream_id] = _Chain(head=head, tail=head)
            return
        if chain.head.seq < head.seq:
            chain.head = head
        if chain.tail.seq < head.seq:
            chain.tail = head
            self._wake(stream_id, None)

    @staticmethod
    async def _find(s: AsyncSession, org: str, name: str) -> LogStream | None:
        result = await s.execute(
            select(LogStream).where(LogStream.org == org, LogStream.name == name)
        )
        return result.scalar_one_or_none()

    async def _existing(self, stream_id: str, name: str, meta: SegmentMeta) -> SegmentView:
        async with self.notary.sessions() as s:
            row = (
                await s.execute(
                    select(LogSegment, Document)
                    .join(Document, Document.id == LogSegment.document_id)
                    .where(LogSegment.stream_id == stream_id, LogSegment.seq == meta.seq)
                )
            ).one_or_none()
        if row is None:  # cannot happen while seq <= head; say so rather than guess
            raise SegmentConflictError(f"segment {meta.seq} of stream {name} is missing")
        seg, doc = row
        if (seg.sha256, seg.start_offset, seg.end_offset) != (meta.sha256, meta.start, meta.end):
            raise SegmentConflictError(
                f"stream {name} already has a different segment {meta.seq} "
                f"(bytes {seg.start_offset}-{seg.end_offset}, SHA-256 {seg.sha256})",
                seq=meta.seq,
                start=seg.start_offset,
                end=seg.end_offset,
                sha256=seg.sha256,
            )
        return _segment_view(seg, doc)

    @staticmethod
    async def _sized(meta: SegmentMeta, body: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """The body, checked to have exactly the range's length."""
        size = 0
        async for chunk in body:
            size += len(chunk)
            yield chunk
        if size != meta.end - meta.start:
            raise errors.BadRequestError(
                f"segment {meta.seq} has {size} bytes, its range {meta.start}-{meta.end} "
                f"says {meta.end - meta.start}"
            )

    async def _link(
        self,
        stream_id: str,
        chain: _Chain,
        meta: SegmentMeta,
        holder: dict[str, bytes],
        doc_id: str,
        manifest: Manifest,
        columns: Callable[[], dict[str, Any]],
    ) -> dict[str, Any]:
        """The upload's acknowledgement (``on_stored``), once the body is stored: wait until
        the predecessor is linked, link to it (build the entry), queue the segment for its
        stream's group commit and return its row's columns once that committed."""
        while True:
            prev = await self._wait_linked(stream_id, chain, meta.seq - 1)
            if prev.seq >= meta.seq:
                other = chain.pending.get(meta.seq)
                if other is None:
                    raise _Accepted  # committed: compare with it
                # Another request for this seq awaits its commit: see how that ends.
                await asyncio.wait([other.done])
                continue
            if prev.end != meta.start:
                raise SegmentLinkError(
                    f"segment {meta.seq} starts at byte {meta.start}; the stream's head "
                    f"(segment {prev.seq}) ends at byte {prev.end}",
                    head_seq=prev.seq,
                    head_end=prev.end,
                )
            if (prev.sha256 or ZERO_SHA256) != meta.prev_sha256:
                raise SegmentLinkError(
                    f"segment {meta.seq} names previous SHA-256 {meta.prev_sha256}; segment "
                    f"{prev.seq} has {prev.sha256}",
                    head_seq=prev.seq,
                )
            holder["prev"] = bytes.fromhex(prev.entry_hash) if prev.entry_hash else GENESIS_PREV
            built = columns()
            link = _Link(
                meta=meta,
                doc_id=doc_id,
                columns=built,
                prev_entry_hash=prev.entry_hash,
                head=_Head(meta.seq, meta.end, manifest.sha256, holder["entry_hash"].hex()),
                done=asyncio.get_running_loop().create_future(),
            )
            chain.tail = link.head
            chain.pending[meta.seq] = link
            chain.queue.append(link)
            self._wake(stream_id, meta.seq)
            if chain.committer is None or chain.committer.done():
                chain.committer = asyncio.create_task(self._commit_queue(stream_id, chain))
            try:
                await self._committed(link)
            except _Relink:
                continue
            return built

    @staticmethod
    async def _committed(link: _Link) -> None:
        """Wait for ``link``'s commit. Cancelled meanwhile, still wait for the outcome: a
        committed segment must not be undone by the upload's cleanup."""
        cancelled = False
        while not link.done.done():
            try:
                await asyncio.shield(link.done)
            except asyncio.CancelledError:
                cancelled = True
        if link.done.exception() is None:
            return  # committed: acknowledged, even if its request was cancelled
        if cancelled:
            raise asyncio.CancelledError
        link.done.result()  # raises

    async def _wait_linked(self, stream_id: str, chain: _Chain, at_least: int) -> _Head:
        """The tail once its seq is at least ``at_least``; SegmentOutOfOrderError after
        ``order_timeout`` seconds.

        The link of seq ``at_least`` in this process wakes the waiter (no database read,
        and no other waiter woken). Every ``poll`` seconds the database is read: other
        replicas of the API may append to the stream too.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.order_timeout
        key = (stream_id, at_least)
        while chain.tail.seq < at_least:
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise SegmentOutOfOrderError(
                    f"segment {at_least + 1} waited {self.order_timeout:g} s for segment "
                    f"{at_least}; the stream's head is segment {chain.head.seq}",
                    head_seq=chain.head.seq,
                )
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.setdefault(key, set()).add(waiter)
            try:
                await asyncio.wait([waiter], timeout=min(remaining, self._poll))
            finally:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(waiter)
                    if not waiters:
                        del self._waiters[key]
            if not waiter.done():  # no news from this process: ask the database
                async with self.notary.sessions() as s:
                    row = await s.get(LogStream, stream_id, populate_existing=True)
                assert row is not None
                self._saw(stream_id, _Head.of(row))
        return chain.tail

    def _wake(self, stream_id: str, seq: int | None) -> None:
        """Wake the segments waiting for ``seq`` of the stream (None: all of them)."""
        if seq is None:
            keys = [k for k in self._waiters if k[0] == stream_id]
        else:
            keys = [(stream_id, seq)]
        for key in keys:
            for waiter in self._waiters.pop(key, ()):
                if not waiter.done():
                    waiter.set_result(None)

    async def _commit_queue(self, stream_id: str, chain: _Chain) -> None:
        """Commit the stream's queued links, each group of consecutive ones in one
        transaction; links queued meanwhile form the next group."""
        while chain.queue:
            group = [chain.queue[0]]
            for link in chain.queue[1 : self._max_group]:
                last = group[-1]
                if (link.meta.seq, link.prev_entry_hash) != (
                    last.meta.seq + 1,
                    last.head.entry_hash,
                ):
                    break
                group.append(link)
            del chain.queue[: len(group)]
            try:
                failed = await self._commit_group(stream_id, chain, group)
            except BaseException as e:  # cancelled: the process stops
                self._fail(stream_id, chain, group, e)
                raise
            if failed is None:
                continue
            error, rest = failed
            if isinstance(error, _Stale):
                # Another replica moved the head: every link from here on is void;
                # each segment links again, to the database's head.
                error = _Relink()
                try:
                    async with self.notary.sessions() as s:
                        row = await s.get(LogStream, stream_id, populate_existing=True)
                    assert row is not None
                    self._saw(stream_id, _Head.of(row))
                except Exception as e:
                    error = e
            self._fail(stream_id, chain, rest, error)

    async def _commit_group(
        self, stream_id: str, chain: _Chain, group: list[_Link]
    ) -> tuple[Exception, list[_Link]] | None:
        """Commit ``group``; None if it committed, else the error and the links that did
        not commit. A group that fails (other than by a moved head) is retried one link at
        a time, so the links before the culprit still commit."""
        try:
            await self._commit(stream_id, group)
        except Exception as e:
            if isinstance(e, _Stale) or len(group) == 1:
                return e, group
            for i, link in enumerate(group):
                try:
                    await self._commit(stream_id, [link])
                except Exception as alone:
                    return alone, group[i:]
                self._done(stream_id, chain, [link])
            return None
        self._done(stream_id, chain, group)
        return None

    def _done(self, stream_id: str, chain: _Chain, group: list[_Link]) -> None:
        """``group`` committed: the head moves to its last link; answer each."""
        self._saw(stream_id, group[-1].head)
        for link in group:
            chain.pending.pop(link.meta.seq, None)
            if not link.done.done():
                link.done.set_result(None)

    def _fail(
        self, stream_id: str, chain: _Chain, group: list[_Link], error: BaseException
    ) -> None:
        """``group`` failed with ``error``; the queued links continue it, so they fail too.
        The tail goes back to the committed head."""
        for link in [*group, *chain.queue]:
            chain.pending.pop(link.meta.seq, None)
            if not link.done.done():
                link.done.set_exception(error)
                link.done.exception()  # retrieved: a cancelled request may not await it
        chain.queue.clear()
        chain.tail = chain.head
        self._wake(stream_id, None)

    async def _commit(self, stream_id: str, group: list[_Link]) -> None:
        """One transaction: move the head from the group's predecessor to its last segment
        (only if the database's head is that predecessor), acknowledge the group's document
        rows and record its segments."""
        first, last = group[0], group[-1]
        continues = (
            LogStream.head_entry_hash.is_(None)
            if first.prev_entry_hash is None
            else LogStream.head_entry_hash == first.prev_entry_hash
        )
        async with self.notary.sessions.begin() as s:
            result = await s.execute(
                update(LogStream)
                .where(
                    LogStream.id == stream_id,
                    LogStream.head_seq == first.meta.seq - 1,
                    continues,
                )
                .values(
                    head_seq=last.head.seq,
                    head_end=last.head.end,
                    head_sha256=last.head.sha256,
                    head_entry_hash=last.head.entry_hash,
                    head_at=self.notary._clock(),
                )
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                raise _Stale
            await s.execute(update(Document), [{"id": g.doc_id, **g.columns} for g in group])
            await s.execute(
                insert(LogSegment),
                [
                    {
                        "stream_id": stream_id,
                        "seq": g.meta.seq,
                        "document_id": g.doc_id,
                        "start_offset": g.meta.start,
                        "end_offset": g.meta.end,
                        "sha256": g.head.sha256,
                        "entry_hash": g.head.entry_hash,
                        "cut_at": g.meta.cut_at,
                    }
                    for g in group
                ],
            )
        self.commits += 1

    def _entry(
        self, stream_id: str, meta: SegmentMeta, holder: dict[str, bytes], salt: bytes, sha: bytes
    ) -> bytes:
        entry = log_segment_entry(
            stream=stream_id,
            seq=meta.seq,
            start=meta.start,
            end=meta.end,
            prev=holder["prev"],
            salt=salt,
            sha256=sha,
        )
        holder["entry_hash"] = entry.leaf_hash()
        return entry.to_bytes()

    # ------------------------------------------------------------------ reads

    async def _visible(self, s: AsyncSession, who: Principal, name: str) -> LogStream:
        check_stream_name(name)
        row = await self._find(s, who.org, name)
        if row is None:
            raise StreamNotFoundError(f"no stream {name!r}")
        return row

    @staticmethod
    async def _anchored_seq(s: AsyncSession, stream: LogStream) -> int:
        first_pending = (
            await s.execute(
                select(func.min(LogSegment.seq))
                .join(Document, Document.id == LogSegment.document_id)
                .where(LogSegment.stream_id == stream.id, Document.status != "anchored")
            )
        ).scalar_one_or_none()
        return stream.head_seq if first_pending is None else int(first_pending) - 1

    async def _view(self, s: AsyncSession, row: LogStream) -> StreamView:
        return StreamView(
            id=row.id,
            name=row.name,
            created_at=row.created_at,
            head_seq=row.head_seq,
            head_end=row.head_end,
            head_sha256=row.head_sha256,
            head_entry_hash=row.head_entry_hash,
            head_at=row.head_at,
            anchored_seq=await self._anchored_seq(s, row),
        )

    async def stream(self, who: Principal, name: str) -> StreamView:
        """The stream ``name`` of the caller's organisation and its head."""
        async with self.notary.sessions() as s:
            return await self._view(s, await self._visible(s, who, name))

    async def streams(self, who: Principal) -> list[StreamView]:
        """Every stream of the caller's organisation, by name."""
        async with self.notary.sessions() as s:
            rows = (
                await s.execute(
                    select(LogStream).where(LogStream.org == who.org).order_by(LogStream.name)
                )
            ).scalars()
            return [await self._view(s, r) for r in rows]

    async def segments(
        self,
        who: Principal,
        name: str,
        *,
        from_seq: int | None = None,
        to_seq: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
        limit: int = MAX_LIST,
    ) -> tuple[StreamView, list[SegmentView]]:
        """Segments of the stream in seq order, at most ``limit``, filtered by seq range and
        by cut time (``from_time <= cut_at < to_time``)."""
        async with self.notary.sessions() as s:
            stream = await self._visible(s, who, name)
            query = (
                select(LogSegment, Document)
                .join(Document, Document.id == LogSegment.document_id)
                .where(LogSegment.stream_id == stream.id)
                .order_by(LogSegment.seq)
                .limit(max(1, min(limit, MAX_LIST)))
            )
            if from_seq is not None:
                query = query.where(LogSegment.seq >= from_seq)
            if to_seq is not None:
                query = query.where(LogSegment.seq <= to_seq)
            if from_time is not None:
                query = query.where(LogSegment.cut_at >= from_time)
            if to_time is not None:
                query = query.where(LogSegment.cut_at < to_time)
            rows = (await s.execute(query)).all()
            return await self._view(s, stream), [_segment_view(seg, doc) for seg, doc in rows]

    async def receipts(
        self, who: Principal, segments: list[SegmentView]
    ) -> dict[int, Receipt | None]:
        """Receipts of the anchored ``segments``, all against one (the latest) checkpoint;
        None for a segment not anchored yet or not covered by that checkpoint."""
        anchored = [g for g in segments if g.status == "anchored" and g.leaf_index is not None]
        out: dict[int, Receipt | None] = {g.seq: None for g in segments}
        if not anchored:
            return out
        from chain.checkpoint import parse_checkpoint
        from chain.note import parse_note

        note = await self.notary.latest_checkpoint()
        size = parse_checkpoint(parse_note(note).text).size
        for g in anchored:
            assert g.leaf_index is not None
            if g.leaf_index < size:
                out[g.seq] = await self.notary.receipt(who, g.document_id, size)
        return out


def now() -> datetime:
    """The current time in UTC (the default cut time of a segment)."""
    return datetime.now(UTC)
