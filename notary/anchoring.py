"""Taking entries to the ledger (documents' and custody events'), and recording their commit.

Entries from concurrent uploads are batched: the worker drains what is queued (up to
``batch_size`` entries, after waiting ``linger`` seconds for more; by default it does not
wait: what queues while a batch is being submitted makes the next batch, and the
validators batch again for their blocks) and submits them in one call. Each submitted
batch then gets a watcher that waits for the commit of each entry and for the signed
checkpoint covering it, records leaf index and block height in the index (through the
group-committing :class:`~notary.index.writer.IndexWriter`: the records of every entry
committed together share one transaction), and wakes whoever waits for that document with
the :class:`Anchored` facts. The waiter is woken as soon as the entry is signed, before
that record commits (an upload with ``wait=true`` answers one index commit sooner: the
receipt is the proof, the record only a cache of it, and it is resubmitted and written
again after a crash); meanwhile :meth:`AnchorWorker.anchored` gives the facts to readers
of this process, so what an upload answered is what a read says right after.

Two kinds of record are anchored, each a row with a ``status`` column: a document
(``documents``, keyed by its id) and a custody event (``custody_events``, keyed by its
integer id). Both go ``anchoring`` -> ``anchored`` with leaf index, block height and time.

The index is the source of truth: every row in state ``anchoring`` is resubmitted at
start (submission is idempotent: the ledger deduplicates entries by hash), so an upload
acknowledged as stored, or a recorded content access, is anchored even if the service
crashed in between.

An entry may be queued before its row says ``anchoring`` (``enqueue(..., after=)``: an
upload submits its entry as soon as the document's digest is known, while the fragments
and the row are still being written): its commit is recorded only once ``after`` is done,
and not at all if ``after`` fails. The ledger may then hold an entry for an upload that
failed (or was cut short by a crash): a salted commitment nobody can open, for which no
receipt is ever issued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chain.merkle import leaf_hash
from chain.node.client import LedgerClientProtocol as Ledger
from notary.index.models import CustodyEvent, Document
from notary.index.writer import IndexWriter
from notary.ledger_process import Covered, ProcessChain

log = logging.getLogger(__name__)

DOCUMENT = "document"
CUSTODY = "custody"
# (kind, id) of the row an entry belongs to.
Key = tuple[str, str]


@dataclass(frozen=True)
class _Queued:
    key: Key
    entry: bytes
    after: asyncio.Future[Any] | None = None  # the row's own write, recorded first


@dataclass(frozen=True)
class Anchored:
    """Where an entry landed, as recorded in the index when it was anchored."""

    leaf_index: int
    block_height: int
    anchored_at: datetime
    # From the embedded validators, for an entry someone waits for: the first signed
    # checkpoint covering it, its tree size and the entry's inclusion proof in that tree.
    checkpoint: str | None = None
    tree_size: int | None = None
    proof: tuple[bytes, ...] | None = None


class AnchorWorker:
    """Batches entries to the ledger and records commits in the index."""

    def __init__(
        self,
        ledger: Ledger,
        sessions: async_sessionmaker[AsyncSession],
        *,
        batch_size: int = 2000,
        linger: float = 0.0,
        commit_timeout: float = 30.0,
        retry_delay: float = 0.2,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        writer: IndexWriter | None = None,
    ) -> None:
        """``writer``: the index's group committer (one of its own over ``sessions`` if
        None; share the service's so that their writes share transactions)."""
        self._ledger = ledger
        self._sessions = sessions
        self._writer = writer or IndexWriter(sessions)
        self._batch_size = batch_size
        self._linger = linger
        self._commit_timeout = commit_timeout
        self._retry_delay = retry_delay
        self._clock = clock
        self._queue: asyncio.Queue[_Queued] = asyncio.Queue()
        self._waiters: dict[Key, asyncio.Future[Anchored]] = {}
        self._unrecorded: dict[Key, Anchored] = {}  # waiters told, index write under way
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None

    def start(
        self,
        pending: Sequence[tuple[str, bytes]] = (),
        custody: Sequence[tuple[int, bytes]] = (),
    ) -> None:
        """Start the worker; ``pending`` document entries and ``custody`` event entries
        (from the index) are submitted first."""
        for doc_id, entry in pending:
            self.enqueue(doc_id, entry)
        for event_id, entry in custody:
            self.enqueue_custody(event_id, entry)
        self._runner = asyncio.create_task(self._run())

    async def stop(self) -> None:
        """Stop submitting and watching; pending documents stay ``anchoring`` in the index."""
        tasks = [t for t in (self._runner, *self._tasks) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for fut in self._waiters.values():
            if not fut.done():
                fut.cancel()

    def enqueue(
        self, doc_id: str, entry: bytes, *, after: asyncio.Future[Any] | None = None
    ) -> None:
        """Queue a document's entry for anchoring. ``after``: the write that makes the
        row ``anchoring``, if still under way: the commit is recorded once it is done
        (if it fails or is cancelled, nothing is recorded and the document's waiter is
        cancelled)."""
        self._queue.put_nowait(_Queued((DOCUMENT, doc_id), entry, after))

    def enqueue_custody(self, event_id: int, entry: bytes) -> None:
        """Queue a custody event's entry for anchoring."""
        self._queue.put_nowait(_Queued((CUSTODY, str(event_id)), entry))

    def wait_anchored(self, doc_id: str) -> asyncio.Future[Anchored]:
        """A future resolved when the document's entry is committed and signed and its row
        durably says ``anchoring`` (the row says ``anchored`` one index commit later; see
        :meth:`anchored`)."""
        return self._waiter((DOCUMENT, doc_id))

    def wait_custody(self, event_id: int) -> asyncio.Future[Anchored]:
        """A future resolved when the custody event's entry is committed and signed."""
        return self._waiter((CUSTODY, str(event_id)))

    def _waiter(self, key: Key) -> asyncio.Future[Anchored]:
        fut = self._waiters.get(key)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._waiters[key] = fut
        return fut

    async def _next_batch(self) -> list[_Queued]:
        """What is queued (waiting for a first entry, then ``linger`` s for more)."""
        batch = [await self._queue.get()]
        if self._linger > 0 and self._queue.qsize() < self._batch_size - 1:
            await asyncio.sleep(self._linger)
        while len(batch) < self._batch_size and not self._queue.empty():
            batch.append(self._queue.get_nowait())
        return batch

    async def _run(self) -> None:
        while True:
            batch = await self._next_batch()
            if isinstance(self._ledger, ProcessChain):
                # One trip submits the batch and waits for it; the next batch need not
                # wait for this one's submission to be acknowledged.
                self._spawn(self._watch(batch, submit=True))
                continue
            while True:
                try:
                    await self._ledger.submit([q.entry for q in batch])
                    break
                except asyncio.CancelledError:
                    raise
                except Exception as e:  # busy or unreachable: keep the batch, try again
                    log.warning("ledger submission of %d entries failed: %s", len(batch), e)
                    await asyncio.sleep(self._retry_delay)
            self._spawn(self._watch(batch))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _watch(self, batch: list[_Queued], *, submit: bool = False) -> None:
        """Wait for each entry of a batch (submitted already, or here with ``submit``) to
        be committed and signed, record it, wake its waiter; resubmit the ones that are
        not (after ``retry_delay``: the ledger may be busy or restarting)."""
        outcomes = await wait_signed(
            self._ledger,
            [leaf_hash(q.entry) for q in batch],
            self._commit_timeout,
            prove=[q.key in self._waiters for q in batch],  # someone wants a receipt
            submit=[q.entry for q in batch] if submit else (),
        )
        done: list[tuple[_Queued, Covered]] = []
        failed: list[tuple[_Queued, BaseException]] = []
        for queued, outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, asyncio.CancelledError):
                raise outcome
            if isinstance(outcome, BaseException):
                failed.append((queued, outcome))
            else:
                done.append((queued, outcome))
        if failed:
            log.warning("%d entries not anchored yet (%s); resubmitting", len(failed), failed[0][1])
        await asyncio.gather(*(self._record(queued, info) for queued, info in done))
        if failed:
            await asyncio.sleep(self._retry_delay)
            for queued, _ in failed:
                self._queue.put_nowait(queued)

    async def _record(self, queued: _Queued, covered: Covered) -> None:
        key = queued.key
        kind, ident = key
        after = queued.after
        if after is not None:
            await asyncio.wait([after])  # however it ends
            if after.cancelled() or after.exception() is not None:
                # The upload failed (and said so): nothing to record.
                fut = self._waiters.pop(key, None)
                if fut is not None:
                    fut.cancel()
                return
        info = covered.info
        anchored = Anchored(
            info.leaf_index,
            info.block_height,
            self._clock(),
            covered.checkpoint,
            covered.tree_size,
            covered.proof,
        )
        values = {
            "status": "anchored",
            "leaf_index": anchored.leaf_index,
            "block_height": anchored.block_height,
            "anchored_at": anchored.anchored_at,
        }
        # The entry is committed and signed, and the row durably says "anchoring": the
        # waiter may answer now. Were this write lost, the row would be resubmitted and
        # recorded at the next start; until it commits, anchored() tells readers.
        self._unrecorded[key] = anchored
        fut = self._waiters.pop(key, None)
        if fut is not None and not fut.done():
            fut.set_result(anchored)
        try:
            if kind == CUSTODY:
                await self._writer.update(CustodyEvent, int(ident), values)
            else:
                await self._writer.update(Document, ident, values)
        except Exception as e:  # the index is unreachable: submit again (idempotent), later;
            # readers go on seeing the facts meanwhile
            log.warning("recording the commit of %s %s failed: %s; resubmitting", *key, e)
            await asyncio.sleep(self._retry_delay)
            self._queue.put_nowait(queued)
        else:
            self._unrecorded.pop(key, None)

    def anchored(self, doc_id: str) -> Anchored | None:
        """Where the document's entry landed if its commit is being recorded right now
        (the waiter has been told; the row still says ``anchoring`` until that write
        commits), else None."""
        return self._unrecorded.get((DOCUMENT, doc_id))


async def wait_signed(
    ledger: Ledger,
    entry_hashes: Sequence[bytes],
    timeout: float,
    prove: Sequence[bool] = (),
    submit: Sequence[bytes] = (),
) -> list[Covered | BaseException]:
    """For each entry, once committed and covered by a signed checkpoint: where it
    landed, or the error. ("Anchored" means a receipt can be issued: the checkpoint
    covering the entry carries enough validator signatures; they are gathered after the
    commit.) The embedded validators also give the checkpoint and the inclusion proof of
    the entries ``prove`` marks, computed on their loop in the same trip; ``submit``: the
    entries to submit first, in that trip too (only for them)."""
    if isinstance(ledger, ProcessChain):  # the embedded validators: one trip for the batch
        marks = list(prove) or [False] * len(entry_hashes)
        try:
            return await ledger.wait_signed(entry_hashes, timeout, marks, submit)
        except Exception as e:  # the call itself failed (their process died, busy, ...)
            return [e] * len(entry_hashes)
    assert not submit, "only the embedded validators submit and wait in one call"

    async def one(entry_hash: bytes) -> Covered:
        info = await ledger.wait_committed(entry_hash, timeout)
        await ledger.checkpoint_covering(info.tree_size, timeout=timeout)
        return Covered(info)

    return await asyncio.gather(*(one(h) for h in entry_hashes), return_exceptions=True)
