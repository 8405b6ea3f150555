"""The notary's document flows: upload (store, index, anchor), metadata, versions, content.

The HTTP layer parses and authenticates; this module decides. An upload goes through
three states, each durable before the next starts:

1. ``storing``: the index row exists (so the document is visible as being stored);
   the body streams into erasure-coded storage, hashed on the way. (A first version's
   row is committed while the body starts streaming, a new version's before: that one
   may be refused.)
2. ``anchoring``: storage holds every fragment and the manifest; the row holds the
   digest, manifest, salt and the entry to anchor. From here the upload is
   acknowledged: a crash now is repaired by resubmitting every ``anchoring`` entry.
3. ``anchored``: the ledger committed the entry; a receipt can be issued.

A failed upload leaves nothing: its row is deleted and storage removes its fragments.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from sqlalchemy import delete, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chain.checkpoint import parse_checkpoint
from chain.errors import ChainError
from chain.merkle import leaf_hash
from chain.node.client import LedgerClientProtocol as Ledger
from chain.node.results import NotFoundError as ChainNotFound
from chain.note import parse_note
from notary import errors
from notary.access import CASE_REF, ORG, Principal, Rights, Role, may_upload, rights
from notary.anchoring import Anchored
from notary.custody import CustodyEvent as CustodyRecord
from notary.custody import CustodyProof, format_time, parse_event
from notary.entry import custody_entry, document_entry
from notary.index.models import CaseOrder, CaseOrderDocument, CustodyEvent, Document, Share
from notary.index.writer import IndexWriter
from notary.ledger_process import ProcessChain
from notary.metadata import UploadMetadata
from notary.receipt import Receipt
from notary.sealed_io import Sealing, is_sealed, must_seal
from storage import DigestMismatchError as StorageDigestMismatch
from storage import DocumentStore, Manifest, StorageError
from storage.manifest import from_dict, to_dict

_T = TypeVar("_T")
Clock = Callable[[], datetime]
RandomBytes = Callable[[int], bytes]
# (salt, document SHA-256) -> the entry bytes to anchor.
EntryBuilder = Callable[[bytes, bytes], bytes]
# Acknowledges a stored upload in place of the service's own write (log segments: each
# links to its predecessor and consecutive ones commit together). Called once the body is
# stored, with the document's id, its manifest and a function that builds the entry
# (``entry_for``, called again after a relink) and returns the row's acknowledging columns.
# The hook may wait (it holds no connection), makes the columns it chose durable on the row
# with its own writes (any transaction, possibly shared), and returns them; the entry is
# queued for anchoring after. Raising refuses the upload, which then leaves nothing behind.
OnStored = Callable[[str, Manifest, Callable[[], dict[str, Any]]], Awaitable[dict[str, Any]]]


def _document_entry(salt: bytes, sha256: bytes) -> bytes:
    return document_entry(salt, sha256).to_bytes()


class Anchorer(Protocol):
    """Takes entries to the ledger; see notary.anchoring."""

    def enqueue(
        self, doc_id: str, entry: bytes, *, after: asyncio.Future[Any] | None = None
    ) -> None:
        """Queue ``entry`` (of document ``doc_id``) for anchoring; returns at once. Its
        commit is recorded only once ``after`` (the row's write) is done."""
        ...

    def wait_anchored(self, doc_id: str) -> Awaitable[Anchored]:
        """Resolves once the document's entry is committed and signed and its row durably
        says ``anchoring`` (``anchored`` tells where it landed until the row says so)."""
        ...

    def anchored(self, doc_id: str) -> Anchored | None:
        """Where the document's entry landed while that is being recorded, else None."""
        ...

    def enqueue_custody(self, event_id: int, entry: bytes) -> None:
        """Queue the entry of custody event ``event_id`` for anchoring; returns at once."""
        ...


__all__ = [
    "CaseOrderView",
    "CustodyView",
    "DocumentView",
    "NotaryService",
    "Principal",
    "ShareView",
    "limit_body",
]


@dataclass(frozen=True)
class DocumentView:
    """What the API shows of a document."""

    id: str
    kind: str
    title: str | None
    filename: str | None
    media_type: str | None
    project: str | None
    supersedes: str | None
    chain_root: str
    version: int
    status: str
    size: int | None
    sha256: str | None
    leaf_index: int | None
    block_height: int | None
    created_at: datetime
    anchored_at: datetime | None
    sealed: bool = False  # stored encrypted (docs/sealing.md)

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the API."""
        out: dict[str, Any] = {
            k: getattr(self, k)
            for k in (
                "id",
                "kind",
                "title",
                "filename",
                "media_type",
                "project",
                "supersedes",
                "version",
                "status",
                "size",
                "sha256",
                "leaf_index",
                "block_height",
            )
        }
        out["created_at"] = _iso(self.created_at)
        out["anchored_at"] = _iso(self.anchored_at) if self.anchored_at else None
        out["sealed"] = self.sealed
        return out


def _iso(t: datetime) -> str:
    if t.tzinfo is None:  # SQLite hands back naive datetimes; they were stored in UTC
        t = t.replace(tzinfo=UTC)
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _view(row: Document) -> DocumentView:
    return DocumentView(
        id=row.id,
        kind=row.kind,
        title=row.title,
        filename=row.filename,
        media_type=row.media_type,
        project=row.project,
        supersedes=row.supersedes,
        chain_root=row.chain_root,
        version=row.version,
        status=row.status,
        size=row.size,
        sha256=row.sha256,
        leaf_index=row.leaf_index,
        block_height=row.block_height,
        created_at=row.created_at,
        anchored_at=row.anchored_at,
        sealed=is_sealed(row.manifest),
    )


async def limit_body(chunks: AsyncIterable[bytes], limit: int) -> AsyncIterator[bytes]:
    """Pass ``chunks`` through, raising PayloadTooLargeError once more than ``limit`` bytes came."""
    seen = 0
    async for chunk in chunks:
        seen += len(chunk)
        if seen > limit:
            raise errors.PayloadTooLargeError(
                f"the document exceeds the limit of {limit} bytes", limit=limit
            )
        yield chunk


# Seconds an upload may take to store before its row is written as "storing" (so that a
# crash past this point leaves a row by which its fragments are found and removed).
STORING_ROW_AFTER = 0.5


class NotaryService:
    """Document flows over storage, the index and the anchorer."""

    def __init__(
        self,
        store: DocumentStore,
        sessions: async_sessionmaker[AsyncSession],
        anchorer: Anchorer,
        ledger: Ledger,
        chain_id: str,
        *,
        max_upload_bytes: int,
        clock: Clock = lambda: datetime.now(UTC),
        random_bytes: RandomBytes = os.urandom,
        sealing: Sealing | None = None,
        writer: IndexWriter | None = None,
    ) -> None:
        """``writer``: the index's group committer (share the anchorer's, so that their
        writes share transactions; one of its own over ``sessions`` if None)."""
        self.store = store
        self.writer = writer or IndexWriter(sessions)
        self.sealing = sealing or Sealing(None)
        self.sessions = sessions
        self.anchorer = anchorer
        self.ledger = ledger
        self.chain_id = chain_id
        self.max_upload_bytes = max_upload_bytes
        self._clock = clock
        self._random = random_bytes
        # A first version still being stored after this long gets its "storing" row.
        self.storing_row_after = STORING_ROW_AFTER

    # ---------------------------------------------------------------- upload

    async def upload(
        self,
        who: Principal,
        meta: UploadMetadata,
        body: AsyncIterable[bytes],
        *,
        entry_for: EntryBuilder = _document_entry,
        on_stored: OnStored | None = None,
    ) -> DocumentView:
        """Store, index and queue for anchoring one document; return it as ``anchoring``.

        ``entry_for`` builds the anchored entry (a document entry by default; log
        segments anchor their own type). ``on_stored`` (see ``OnStored``) acknowledges the
        stored upload in place of the service and may raise to refuse it: the row and the
        fragments are then removed, and the error propagates.
        """
        row, _ = await self._upload(who, meta, body, entry_for, on_stored, wait=False)
        return _view(row)

    async def upload_anchored(
        self, who: Principal, meta: UploadMetadata, body: AsyncIterable[bytes], timeout: float
    ) -> tuple[DocumentView, Receipt]:
        """Upload one document, wait until it is anchored and return it with its receipt.

        ChainUnavailableError if anchoring takes over ``timeout`` s (the document stays
        stored and is anchored later). Reads nothing back from the index: this request
        wrote the row, and the anchorer says where the entry landed once that is recorded.
        """
        row, anchoring = await self._upload(who, meta, body, _document_entry, None, wait=True)
        assert anchoring is not None
        try:
            async with asyncio.timeout(timeout):
                anchored = await asyncio.shield(anchoring)
        except TimeoutError:
            raise errors.ChainUnavailableError(
                f"document {row.id} is stored but not anchored within {timeout:g} s; "
                "it will be anchored later: poll its status",
                document=row.id,
            ) from None
        row.status = "anchored"
        row.leaf_index = anchored.leaf_index
        row.block_height = anchored.block_height
        row.anchored_at = anchored.anchored_at
        if anchored.checkpoint is not None and anchored.proof is not None:
            assert anchored.tree_size is not None  # given with the checkpoint
            return _view(row), _receipt(
                self.chain_id, row, anchored.checkpoint, anchored.tree_size, anchored.proof
            )
        return _view(row), await self._receipt_of(row, None)

    async def _upload(
        self,
        who: Principal,
        meta: UploadMetadata,
        body: AsyncIterable[bytes],
        entry_for: EntryBuilder,
        on_stored: OnStored | None,
        *,
        wait: bool,
    ) -> tuple[Document, Awaitable[Anchored] | None]:
        """The upload (see ``upload``): the row as written (not attached to a session)
        and, if ``wait``, the anchorer's future for it (taken before the entry is queued)."""
        doc_id = self._random(16).hex()
        salt = self._random(32)
        # A first version's row is inserted lazily (unless a hook writes to it): only if
        # storing takes over ``storing_row_after`` s, as "storing"; otherwise once stored,
        # as "anchoring" in one write (one row write less per upload).
        row, inserted, insert_columns = await self._insert_storing(
            who, meta, doc_id, salt, lazy=on_stored is None
        )
        timer: asyncio.TimerHandle | None = None
        if inserted is None:

            def insert_storing() -> None:
                nonlocal inserted
                inserted = asyncio.ensure_future(self.writer.insert(Document, insert_columns))

            timer = asyncio.get_running_loop().call_later(self.storing_row_after, insert_storing)
        # The entry of a plain document goes to the ledger as soon as its digest is known,
        # while fragments and rows are still being written; the anchorer records its
        # commit only once ``recorded`` (the row says "anchoring") is done, and nothing
        # if it is cancelled (the upload failed). See AnchorWorker.enqueue.
        recorded: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        anchoring: Awaitable[Anchored] | None = None
        queued: bytes | None = None

        def digest_known(sha256: str) -> None:
            nonlocal anchoring, queued
            queued = entry_for(salt, bytes.fromhex(sha256))
            anchoring = self.anchorer.wait_anchored(doc_id) if wait else None
            self.anchorer.enqueue(doc_id, queued, after=recorded)

        early = on_stored is None and not must_seal(meta)
        try:
            try:
                # A row being inserted meanwhile cannot be refused (a first version's);
                # both must be durable before the upload moves on.
                manifest, size, sha256 = await self._store(
                    doc_id, meta, body, digest_known if early else None
                )
            except BaseException:
                if timer is not None:
                    timer.cancel()
                if inserted is not None:
                    await asyncio.gather(inserted, return_exceptions=True)
                    await self._forget(doc_id)
                raise
            if timer is not None:
                timer.cancel()
            try:
                if inserted is not None:
                    await inserted
            except BaseException:
                with contextlib.suppress(StorageError):  # invisible without a row
                    await self.store.delete(manifest)
                raise
            manifest_json = json.dumps(to_dict(manifest), separators=(",", ":"))

            def columns() -> dict[str, Any]:
                entry = queued if queued is not None else entry_for(salt, bytes.fromhex(sha256))
                return {
                    "status": "anchoring",
                    "size": size,
                    "sha256": sha256,
                    "manifest": manifest_json,
                    "entry": entry,
                    "entry_hash": leaf_hash(entry).hex(),
                }

            try:
                if on_stored is None:
                    stored = columns()
                    if queued is None:  # sealed: the plaintext's digest came with the manifest
                        anchoring = self.anchorer.wait_anchored(doc_id) if wait else None
                        self.anchorer.enqueue(doc_id, stored["entry"], after=recorded)
                    if inserted is None:  # stored quickly: the row, complete, in one write
                        await self.writer.insert(Document, {**insert_columns, **stored})
                    else:
                        await self.writer.update(Document, doc_id, stored)
                    recorded.set_result(None)
                else:
                    stored = await on_stored(doc_id, manifest, columns)
                    self.anchorer.enqueue(doc_id, stored["entry"])
            except BaseException:
                await self._forget(doc_id)
                with contextlib.suppress(StorageError):  # leftovers are invisible without a row
                    await self.store.delete(manifest)
                raise
        finally:
            recorded.cancel()  # unless set: the entry, if queued, is not recorded
        for column, value in stored.items():
            setattr(row, column, value)
        return row, anchoring

    async def _insert_storing(
        self, who: Principal, meta: UploadMetadata, doc_id: str, salt: bytes, *, lazy: bool
    ) -> tuple[Document, asyncio.Future[None] | None, dict[str, Any]]:
        """Insert the document's row as ``storing``; return it (not attached to a session),
        the insert's completion (already done, except for a first version, whose row goes
        through the group committer while the caller goes on; None for a first version
        when ``lazy``: nothing is written, the caller inserts ``columns`` when it must)
        and its columns."""
        if not may_upload(who):
            raise errors.ForbiddenError(f"the role {who.role} may not upload documents")
        columns: dict[str, object] = {
            "id": doc_id,
            "org": who.org,
            "kind": meta.kind.value,
            "title": meta.title,
            "filename": meta.filename,
            "media_type": meta.media_type,
            "project": meta.project,
            "supersedes": meta.supersedes,
            "chain_root": doc_id,
            "version": 1,
            "status": "storing",
            "salt": salt,
            "created_at": self._clock(),
        }
        if meta.supersedes is None:
            # A first version: no reads, no constraint another upload could race for;
            # the row shares a transaction with the other uploads of the moment.
            if lazy:
                return Document(**columns), None, columns
            insert = asyncio.ensure_future(self.writer.insert(Document, columns))
            return Document(**columns), insert, columns
        async with self.sessions.begin() as s:
            prior, granted = await self._visible(s, who, meta.supersedes)
            if not granted.owner:
                raise errors.ForbiddenError(
                    f"only the organisation owning document {meta.supersedes} may supersede it"
                )
            # A new version belongs to the chain's organisation, whoever uploads it.
            columns.update(chain_root=prior.chain_root, version=prior.version + 1, org=prior.org)
            s.add(Document(**columns))
            try:
                await s.flush()
            except IntegrityError:
                raise errors.AlreadySupersededError(
                    f"document {meta.supersedes} already has a newer version"
                ) from None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return Document(**columns), done, columns

    async def _store(
        self,
        doc_id: str,
        meta: UploadMetadata,
        body: AsyncIterable[bytes],
        on_digest: Callable[[str], None] | None,
    ) -> tuple[Manifest, int, str]:
        """The stored manifest and the plaintext's size and SHA-256 (sealed if it must
        be). ``on_digest``: see ``DocumentStore.put`` (documents stored as they are)."""
        try:
            if must_seal(meta):
                return await self.sealing.put(
                    self.store,
                    limit_body(body, self.max_upload_bytes),
                    doc_id=doc_id,
                    expected_sha256=meta.sha256,
                    new_id=True,
                )
            manifest = await self.store.put(
                limit_body(body, self.max_upload_bytes),
                doc_id=doc_id,
                expected_sha256=meta.sha256,
                new_id=True,  # drawn at random just now (128 bits): nothing to look up
                on_digest=on_digest,
            )
            return manifest, manifest.size, manifest.sha256
        except StorageDigestMismatch as e:
            raise errors.DigestMismatchError(
                f"the uploaded bytes have SHA-256 {e.calculated}, not {e.expected}; "
                "nothing was stored",
                expected=e.expected,
                calculated=e.calculated,
            ) from None
        except StorageError as e:
            cause = e.__cause__
            if isinstance(cause, errors.NotaryError):
                raise cause from None  # the body's own failure, e.g. too large
            raise errors.StorageUnavailableError(
                f"the document could not be stored: {e}; nothing was kept"
            ) from None

    async def _forget(self, doc_id: str) -> None:
        async with self.sessions.begin() as s:
            await s.execute(delete(Document).where(Document.id == doc_id))

    # ------------------------------------------------------------------ reads

    async def _visible(
        self, s: AsyncSession, who: Principal, doc_id: str
    ) -> tuple[Document, Rights]:
        """The document and the caller's rights over it; DocumentNotFoundError unless the
        caller may see it at all (so ids reveal nothing about others' documents)."""
        row = await s.get(Document, doc_id)
        if row is None:
            raise errors.DocumentNotFoundError(f"no document {doc_id}")
        granted = await rights(s, who, row)
        if not granted.metadata:
            raise errors.DocumentNotFoundError(f"no document {doc_id}")
        return row, granted

    async def get(self, who: Principal, doc_id: str) -> DocumentView:
        """The document's metadata and status; DocumentNotFoundError if not visible."""
        async with self.sessions() as s:
            return _view(self._settled((await self._visible(s, who, doc_id))[0]))

    async def versions(self, who: Principal, doc_id: str) -> list[DocumentView]:
        """Every version of the document's chain the caller may see, oldest first."""
        async with self.sessions() as s:
            row, _ = await self._visible(s, who, doc_id)
            rows = (
                await s.execute(
                    select(Document)
                    .where(Document.chain_root == row.chain_root)
                    .order_by(Document.version)
                )
            ).scalars()
            return [_view(self._settled(r)) for r in rows if (await rights(s, who, r)).metadata]

    async def wait_anchored(self, who: Principal, doc_id: str, timeout: float) -> DocumentView:
        """The document once anchored; ChainUnavailableError if that takes over ``timeout`` s."""
        # Register interest before looking, so a commit between the two is not missed.
        anchored = self.anchorer.wait_anchored(doc_id)
        view = await self.get(who, doc_id)
        if view.status != "anchored":
            try:
                await asyncio.wait_for(asyncio.shield(anchored), timeout)
            except TimeoutError:
                raise errors.ChainUnavailableError(
                    f"document {doc_id} is stored but not anchored within {timeout:g} s; "
                    "it will be anchored later: poll its status",
                    document=doc_id,
                ) from None
            view = await self.get(who, doc_id)
        return view

    async def receipt(self, who: Principal, doc_id: str, tree_size: int | None = None) -> Receipt:
        """The document's receipt against the latest checkpoint, or the one of ``tree_size``.

        NotAnchoredError until the entry is committed; BadRequestError for a tree size
        that does not yet cover the entry; NotFoundError for an unknown tree size.
        """
        async with self.sessions() as s:
            row, _ = await self._visible(s, who, doc_id)
        return await self._receipt_of(self._settled(row), tree_size)

    def _settled(self, row: Document) -> Document:
        """``row`` as it reads once the anchorer's write under way lands: a detached copy
        saying ``anchored`` if its entry is signed and only that record is pending (an
        upload answered with the receipt already), else ``row`` itself."""
        anchored = self.anchorer.anchored(row.id) if row.status == "anchoring" else None
        if anchored is None:
            return row
        copy = Document(**{a.key: getattr(row, a.key) for a in sa_inspect(Document).column_attrs})
        copy.status = "anchored"
        copy.leaf_index = anchored.leaf_index
        copy.block_height = anchored.block_height
        copy.anchored_at = anchored.anchored_at
        return copy

    async def _receipt_of(self, row: Document, tree_size: int | None) -> Receipt:
        doc_id = row.id
        if row.status != "anchored" or row.leaf_index is None or row.entry is None:
            raise errors.NotAnchoredError(f"document {doc_id} is {row.status}, not anchored yet")
        note, proof = None, None
        if tree_size is None and isinstance(self.ledger, ProcessChain):
            # The embedded validators: note and proof in one round trip.
            note, proof = await self._call_ledger(self.ledger.latest_with_proof(row.leaf_index))
            if note is None:
                raise errors.ChainUnavailableError("the ledger has no committed checkpoint yet")
        else:
            note = await self._checkpoint(tree_size)
        size = parse_checkpoint(parse_note(note).text).size
        if row.leaf_index >= size:
            raise errors.BadRequestError(
                f"the checkpoint of tree size {size} does not yet include leaf {row.leaf_index}"
            )
        if proof is None:
            proof = await self._call_ledger(
                self.ledger.inclusion_proof(size, leaf_index=row.leaf_index)
            )
        return _receipt(self.chain_id, row, note, size, tuple(proof.hashes))

    async def _checkpoint(self, tree_size: int | None) -> str:
        if tree_size is None:
            note = await self._call_ledger(self.ledger.latest_checkpoint())
            if note is None:
                raise errors.ChainUnavailableError("the ledger has no committed checkpoint yet")
            return note
        try:
            return await self.ledger.checkpoint(tree_size)
        except ChainNotFound:
            raise errors.NotFoundError(
                f"no committed checkpoint of tree size {tree_size}"
            ) from None

    async def _call_ledger(self, op: Awaitable[_T]) -> _T:
        try:
            return await op
        except ChainError as e:
            raise errors.ChainUnavailableError(f"the ledger could not answer: {e}") from None

    async def latest_checkpoint(self) -> str:
        """The newest committed checkpoint note."""
        return await self._checkpoint(None)

    async def consistency(self, old_size: int, new_size: int) -> tuple[bytes, ...]:
        """A consistency proof between two committed tree sizes."""
        if not 0 < old_size <= new_size:
            raise errors.BadRequestError("need 0 < from <= to")
        await self._checkpoint(new_size)  # 404 unless that size was committed
        try:
            proof = await self.ledger.consistency_proof(old_size, new_size)
        except ChainNotFound:
            raise errors.NotFoundError(f"no tree of size {new_size}") from None
        return tuple(proof.hashes)

    async def manifest(
        self, who: Principal, doc_id: str, case_ref: str | None = None
    ) -> tuple[DocumentView, Manifest]:
        """The document and its storage manifest, for reading its content.

        Only for callers who may read the content (courts: under ``case_ref``, a case
        order naming the document); ForbiddenError for those who only see metadata;
        NotAnchoredError while still storing.
        """
        async with self.sessions() as s:
            row, granted = await self._visible(s, who, doc_id)
            await self._check_content(s, who, row, granted, case_ref)
        if row.manifest is None:
            raise errors.NotAnchoredError(f"document {doc_id} is still being stored")
        return _view(self._settled(row)), from_dict(json.loads(row.manifest))

    async def pending(self) -> list[tuple[str, bytes]]:
        """Documents stored but not yet anchored: (id, entry), oldest first."""
        async with self.sessions() as s:
            rows = await s.execute(
                select(Document.id, Document.entry)
                .where(Document.status == "anchoring")
                .order_by(Document.created_at)
            )
            return [(i, e) for i, e in rows if e is not None]

    async def abandon_unfinished(self, older_than: timedelta) -> int:
        """Forget uploads that have been ``storing`` for longer than ``older_than``: a crash
        interrupted them before they were acknowledged. (Younger ones may be in progress
        in another replica of the service.)"""
        cutoff = self._clock() - older_than
        async with self.sessions() as s:
            ids = list(
                (
                    await s.execute(
                        select(Document.id).where(
                            Document.status == "storing", Document.created_at < cutoff
                        )
                    )
                ).scalars()
            )
        for doc_id in ids:
            await self._forget(doc_id)
        return len(ids)

    # ------------------------------------------------------- content access

    async def _check_content(
        self,
        s: AsyncSession,
        who: Principal,
        row: Document,
        granted: Rights,
        case_ref: str | None,
    ) -> None:
        if case_ref is not None:
            if not CASE_REF.fullmatch(case_ref):
                raise errors.BadRequestError("case must be a case reference")
            query = (
                select(CaseOrder.id)
                .join(CaseOrderDocument, CaseOrderDocument.case_order_id == CaseOrder.id)
                .where(CaseOrder.case_ref == case_ref, CaseOrderDocument.document_id == row.id)
            )
            if who.role != Role.ADMIN:
                query = query.where(CaseOrder.court_org == who.org)
            if await s.scalar(query) is None:
                raise errors.CaseOrderNotFoundError(
                    f"no case order {case_ref!r} names document {row.id} for {who.org}"
                )
        if granted.may_read_content(case_ref):
            return
        if who.role == Role.COURT:
            raise errors.ForbiddenError(
                "a court reads content under a case order naming the document: add ?case=REF"
            )
        raise errors.ForbiddenError(f"the role {who.role} may not read document content")

    async def record_access(
        self, who: Principal, doc_id: str, start: int, end: int, case_ref: str | None = None
    ) -> int:
        """Record one read of bytes ``[start, end)`` of a document and queue its custody
        entry for anchoring; return the event's id.

        The record is committed before this returns, so content is served only once its
        access is on record (a failure here refuses the read).
        """
        at = self._clock()
        salt = self._random(32)
        async with self.sessions.begin() as s:
            row = await s.get(Document, doc_id)
            if row is None or row.sha256 is None or row.entry_hash is None:
                raise errors.DocumentNotFoundError(f"no stored document {doc_id}")
            event = CustodyRecord(
                document_id=row.id,
                document_sha256=row.sha256,
                document_entry_hash=row.entry_hash,
                actor_name=who.name,
                actor_org=who.org,
                actor_role=who.role,
                action="read",
                case_ref=case_ref,
                start=start,
                end=end,
                at=format_time(at),
            )
            data = event.to_bytes()
            entry = custody_entry(salt, data, bytes.fromhex(row.entry_hash)).to_bytes()
            record = CustodyEvent(
                document_id=row.id,
                actor=who.name,
                actor_org=who.org,
                actor_role=who.role,
                action="read",
                case_ref=case_ref,
                range_start=start,
                range_end=end,
                at=at,
                event=data,
                salt=salt,
                entry=entry,
                entry_hash=leaf_hash(entry).hex(),
                status="anchoring",
            )
            s.add(record)
            await s.flush()
            event_id = record.id
        self.anchorer.enqueue_custody(event_id, entry)
        return event_id

    async def custody(
        self, who: Principal, doc_id: str, *, after: int = 0, limit: int = 100
    ) -> list[CustodyView]:
        """The document's custody events after id ``after`` (at most ``limit``), oldest
        first, each anchored one with a proof against the latest checkpoint."""
        async with self.sessions() as s:
            _, granted = await self._visible(s, who, doc_id)
            if not granted.custody:
                raise errors.ForbiddenError(f"the role {who.role} may not read custody logs")
            rows = list(
                (
                    await s.execute(
                        select(CustodyEvent)
                        .where(CustodyEvent.document_id == doc_id, CustodyEvent.id > after)
                        .order_by(CustodyEvent.id)
                        .limit(limit)
                    )
                ).scalars()
            )
        proofs = await self._custody_proofs(
            [r for r in rows if r.status == "anchored" and r.leaf_index is not None]
        )
        return [_custody_view(r, proofs.get(r.id)) for r in rows]

    async def _custody_proofs(self, rows: list[CustodyEvent]) -> dict[int, CustodyProof]:
        if not rows:
            return {}
        note = await self._checkpoint(None)
        size = parse_checkpoint(parse_note(note).text).size
        covered = [r for r in rows if r.leaf_index is not None and r.leaf_index < size]
        found = await self._call_ledger(
            asyncio.gather(
                *(self.ledger.inclusion_proof(size, leaf_index=r.leaf_index) for r in covered)
            )
        )
        return {
            r.id: CustodyProof(
                chain_id=self.chain_id,
                event=r.event,
                salt=r.salt,
                entry=r.entry,
                leaf_index=p.leaf_index,
                tree_size=size,
                inclusion_proof=tuple(p.hashes),
                checkpoint=note,
            )
            for r, p in zip(covered, found, strict=True)
        }

    async def pending_custody(self) -> list[tuple[int, bytes]]:
        """Custody events recorded but not yet anchored: (id, entry), oldest first."""
        async with self.sessions() as s:
            rows = await s.execute(
                select(CustodyEvent.id, CustodyEvent.entry)
                .where(CustodyEvent.status == "anchoring")
                .order_by(CustodyEvent.id)
            )
            return [(i, e) for i, e in rows]

    # --------------------------------------------------------------- sharing

    async def share(self, who: Principal, doc_id: str, org: str) -> tuple[ShareView, bool]:
        """Share the document's version chain with ``org``; (the share, whether it is new).

        Only the owning organisation's submitters and admins may share.
        """
        if not ORG.fullmatch(org):
            raise errors.InvalidRequestError("org must be 1-128 letters, digits and ._-")
        try:
            async with self.sessions.begin() as s:
                row, granted = await self._visible(s, who, doc_id)
                if not granted.owner:
                    raise errors.ForbiddenError("only the owning organisation may share a document")
                if org == row.org:
                    raise errors.InvalidRequestError(f"{org} owns document {doc_id} already")
                # Kept apart: a failed commit expires ``row``, which cannot reload lazily.
                chain_root = row.chain_root
                existing = await s.scalar(
                    select(Share).where(Share.chain_root == chain_root, Share.org == org)
                )
                if existing is not None:
                    return _share_view(existing), False
                share = Share(
                    chain_root=chain_root,
                    org=org,
                    created_by=who.name,
                    created_at=self._clock(),
                )
                s.add(share)
        except IntegrityError:  # the same share, made concurrently: report that one
            async with self.sessions() as s:
                existing = await s.scalar(
                    select(Share).where(Share.chain_root == chain_root, Share.org == org)
                )
            assert existing is not None
            return _share_view(existing), False
        return _share_view(share), True

    async def shares(self, who: Principal, doc_id: str) -> list[ShareView]:
        """The organisations the document's version chain is shared with."""
        async with self.sessions() as s:
            row, granted = await self._visible(s, who, doc_id)
            if not (granted.owner or who.role == Role.AUDITOR):
                raise errors.ForbiddenError("only the owning organisation lists its shares")
            rows = (
                await s.execute(
                    select(Share).where(Share.chain_root == row.chain_root).order_by(Share.id)
                )
            ).scalars()
            return [_share_view(r) for r in rows]

    # ----------------------------------------------------------- case orders

    async def create_case_order(
        self, who: Principal, case_ref: str, court_org: str, document_ids: list[str]
    ) -> CaseOrderView:
        """Record a court's order (admins only) to read ``document_ids`` under ``case_ref``."""
        if who.role != Role.ADMIN:
            raise errors.ForbiddenError("only an admin records case orders")
        problems = []
        if not CASE_REF.fullmatch(case_ref):
            problems.append("case_ref: 1-128 letters, digits, spaces and ._/:#-")
        if not ORG.fullmatch(court_org):
            problems.append("court_org: 1-128 letters, digits and ._-")
        if not 1 <= len(document_ids) <= 1000 or len(set(document_ids)) != len(document_ids):
            problems.append("documents: 1 to 1000 distinct document ids")
        if problems:
            raise errors.InvalidRequestError("invalid case order: " + "; ".join(problems))
        async with self.sessions.begin() as s:
            known = set(
                (
                    await s.execute(select(Document.id).where(Document.id.in_(document_ids)))
                ).scalars()
            )
            missing = [d for d in document_ids if d not in known]
            if missing:
                raise errors.InvalidRequestError(
                    f"no such documents: {', '.join(missing[:10])}", missing=missing
                )
            if await s.scalar(select(CaseOrder.id).where(CaseOrder.case_ref == case_ref)):
                raise errors.CaseOrderExistsError(f"case order {case_ref!r} is recorded already")
            order = CaseOrder(
                case_ref=case_ref,
                court_org=court_org,
                created_by=who.name,
                created_at=self._clock(),
            )
            s.add(order)
            try:
                await s.flush()
            except IntegrityError:  # recorded concurrently
                raise errors.CaseOrderExistsError(
                    f"case order {case_ref!r} is recorded already"
                ) from None
            s.add_all(
                CaseOrderDocument(case_order_id=order.id, document_id=d) for d in document_ids
            )
        return CaseOrderView(case_ref, court_org, tuple(document_ids), who.name, order.created_at)

    async def case_orders(self, who: Principal) -> list[CaseOrderView]:
        """Case orders: all for admins and auditors, a court's own for a court."""
        if who.role not in (Role.ADMIN, Role.AUDITOR, Role.COURT):
            raise errors.ForbiddenError(f"the role {who.role} may not list case orders")
        async with self.sessions() as s:
            query = select(CaseOrder).order_by(CaseOrder.id)
            if who.role == Role.COURT:
                query = query.where(CaseOrder.court_org == who.org)
            orders = list((await s.execute(query)).scalars())
            links = (
                await s.execute(
                    select(CaseOrderDocument.case_order_id, CaseOrderDocument.document_id).where(
                        CaseOrderDocument.case_order_id.in_([o.id for o in orders])
                    )
                )
            ).all()
        docs: dict[int, list[str]] = {}
        for order_id, document_id in links:
            docs.setdefault(order_id, []).append(document_id)
        return [
            CaseOrderView(
                o.case_ref,
                o.court_org,
                tuple(sorted(docs.get(o.id, []))),
                o.created_by,
                o.created_at,
            )
            for o in orders
        ]


def _receipt(
    chain_id: str, row: Document, note: str, tree_size: int, proof: tuple[bytes, ...]
) -> Receipt:
    """The receipt of an anchored document row against a checkpoint that covers it."""
    assert row.sha256 is not None and row.size is not None
    assert row.entry is not None and row.leaf_index is not None
    return Receipt(
        chain_id=chain_id,
        document_sha256=bytes.fromhex(row.sha256),
        document_size=row.size,
        salt=row.salt,
        entry=row.entry,
        leaf_index=row.leaf_index,
        tree_size=tree_size,
        inclusion_proof=proof,
        checkpoint=note,
    )


@dataclass(frozen=True)
class CustodyView:
    """One custody event as the API shows it, with its proof once anchored."""

    id: int
    status: str
    event: CustodyRecord
    leaf_index: int | None
    block_height: int | None
    anchored_at: datetime | None
    proof: CustodyProof | None

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the API (docs/custody.md)."""
        record = self.event.to_json()
        return {
            "id": self.id,
            "status": self.status,
            **{k: record[k] for k in ("action", "actor", "case_ref", "range", "at")},
            "leaf_index": self.leaf_index,
            "block_height": self.block_height,
            "anchored_at": _iso(self.anchored_at) if self.anchored_at else None,
            "proof": self.proof.to_json() if self.proof else None,
        }


def _custody_view(row: CustodyEvent, proof: CustodyProof | None) -> CustodyView:
    return CustodyView(
        id=row.id,
        status=row.status,
        event=parse_event(row.event),
        leaf_index=row.leaf_index,
        block_height=row.block_height,
        anchored_at=row.anchored_at,
        proof=proof,
    )


@dataclass(frozen=True)
class ShareView:
    """A share of a version chain with an organisation."""

    org: str
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the API."""
        return {"org": self.org, "created_by": self.created_by, "created_at": _iso(self.created_at)}


def _share_view(row: Share) -> ShareView:
    return ShareView(row.org, row.created_by, row.created_at)


@dataclass(frozen=True)
class CaseOrderView:
    """A recorded case order."""

    case_ref: str
    court_org: str
    documents: tuple[str, ...]
    created_by: str
    created_at: datetime

    def to_json(self) -> dict[str, Any]:
        """The JSON object of the API."""
        return {
            "case_ref": self.case_ref,
            "court_org": self.court_org,
            "documents": list(self.documents),
            "created_by": self.created_by,
            "created_at": _iso(self.created_at),
        }
