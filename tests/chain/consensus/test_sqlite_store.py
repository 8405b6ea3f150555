"""The SQLite store survives a real close and reopen, and a validator restarted on it does
not vote again in a view it already voted in."""

from __future__ import annotations

import errno
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from builders import COMMITTEE, KEYS, child, propose, qc_for

from chain.consensus.blocks import GENESIS
from chain.consensus.core import Core
from chain.consensus.ledger import MemoryLedger
from chain.consensus.messages import Message, Vote
from chain.consensus.safety import SafetyState
from chain.consensus.sqlite_store import SqliteStore
from chain.errors import StoreError
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"e1",))
B2, F2 = child(B1, F1, entries=(b"e2", b"e3"))


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path
    store = SqliteStore.open(path)
    assert store.load_safety() is None and store.committed_head() is None
    state = SafetyState(last_voted_view=7, last_proposed_view=5, high_qc=qc_for(B2))
    store.save_safety(state)
    store.put_block(B1)
    store.put_block(B2)
    store.set_committed(B1)
    store.put_checkpoint(1, "note-1")
    store.close()

    again = SqliteStore.open(path)
    assert again.load_safety() == state
    assert again.committed_head() == B1 and again.committed_block(1) == B1
    assert again.get_block(B2.hash) == B2
    assert again.blocks_above(0) == [B1, B2]
    assert again.checkpoint() == "note-1" and again.checkpoint(2) is None
    again.close()


class Outbox:
    def __init__(self) -> None:
        self.sent: list[Message] = []

    def send(self, to: str, message: Message) -> None:
        self.sent.append(message)

    def broadcast(self, message: Message) -> None:
        self.sent.append(message)


class ManualClock:
    def __init__(self) -> None:
        self.now = B2.timestamp_ms
        self.pending: list[object] = []

    def now_ms(self) -> int:
        return self.now

    def call_later(self, delay_ms: int, callback: object) -> ManualTimer:
        self.pending.append(callback)
        return ManualTimer()


class ManualTimer:
    def cancel(self) -> None:
        pass


def make_core(path: Path, outbox: Outbox) -> tuple[Core, SqliteStore]:
    store = SqliteStore.open(path)
    core = Core(
        name=KEYS[0].name,
        committee=COMMITTEE,
        signer=KEYS[0],
        transport=outbox,
        clock=ManualClock(),
        block_store=store,
        safety_store=store,
        ledger=MemoryLedger(),
    )
    core.start()
    return core, store


def test_restarted_validator_does_not_vote_twice(tmp_path: Path) -> None:
    path = tmp_path / "v0"
    first = Outbox()
    core, store = make_core(path, first)
    core.handle("v1", propose(B1))
    votes = [m for m in first.sent if isinstance(m, Vote)]
    assert [v.view for v in votes] == [B1.view]
    store.close()  # the process dies; only the file remains

    second = Outbox()
    core2, store2 = make_core(path, second)
    assert core2.safety.state.last_voted_view == B1.view
    core2.handle("v1", propose(B1))  # a replay of the same proposal
    assert not [m for m in second.sent if isinstance(m, Vote)]
    core2.handle("v2", propose(B2))  # the next view is fine
    assert [v.view for v in second.sent if isinstance(v, Vote)] == [B2.view]
    store2.close()


def _synchronous_modes(store: SqliteStore, action: Callable[[], None]) -> list[str]:
    """The synchronous modes set while ``action`` ran (SQLite's own statement trace)."""
    seen: list[str] = []
    store._db.set_trace_callback(seen.append)
    try:
        action()
    finally:
        store._db.set_trace_callback(None)
    return [s.split("=")[1] for s in seen if s.startswith("PRAGMA synchronous=")]


def test_only_the_safety_state_and_unbarriered_markers_are_fsynced(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path)
    state = SafetyState(last_voted_view=3, last_proposed_view=2, high_qc=qc_for(B1))
    assert _synchronous_modes(store, lambda: store.save_safety(state)) == ["FULL", "NORMAL"]
    assert _synchronous_modes(store, lambda: store.put_block(B1)) == []
    # Without a barrier, the marker of a block with entries is durable by itself.
    assert _synchronous_modes(store, lambda: store.set_committed(B1)) == ["FULL", "NORMAL"]
    assert _synchronous_modes(store, lambda: store.put_checkpoint(1, "note-1")) == []
    # With one, the ledger's writer fsyncs it (before the entries are written).
    barrier = store.commit_barrier()
    assert _synchronous_modes(store, lambda: store.set_committed(B2)) == []
    assert _synchronous_modes(store, lambda: store.save_safety(state)) == ["FULL", "NORMAL"]
    barrier()
    store.close()
    again = SqliteStore.open(tmp_path)
    assert again.committed_head() == B2 and again.checkpoint(1) == "note-1"
    again.close()


def test_sync_fsyncs_the_wal_that_holds_the_unsynced_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore.open(tmp_path)
    barrier = store.commit_barrier()
    store.put_block(B1)
    store.set_committed(B1)  # written to the WAL, not fsynced
    synced: list[str] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    errors: list[BaseException] = []

    def on_thread() -> None:  # the ledger's writer thread runs it
        try:
            barrier()
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=on_thread)
    t.start()
    t.join()
    assert not errors
    wal = str(tmp_path / "consensus.sqlite-wal")
    assert synced[0] == wal and synced[1] == str(tmp_path)  # the directory, first time only
    barrier()
    assert synced[2:] == [wal]
    store.close()


def test_a_failing_sync_raises_a_store_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore.open(tmp_path)

    def broken_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(StoreError, match="sync failed"):
        store.sync()
    store.close()
