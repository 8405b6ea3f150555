"""A crash between marking a block committed and appending it to the Merkle log is
repaired at start: the committed blocks the log lacks are replayed into it (the real
``chain.log.MerkleLog`` and the SQLite store, reopened)."""

from __future__ import annotations

from pathlib import Path

import pytest
from builders import COMMITTEE, KEYS, child

from chain.consensus.blocks import GENESIS
from chain.consensus.core import Core
from chain.consensus.errors import SafetyViolationError
from chain.consensus.sqlite_store import SqliteStore
from chain.log import MerkleLog
from chain.merkle import CompactRange

B1, F1 = child(GENESIS, CompactRange.empty(), entries=(b"a", b"b"))
B2, F2 = child(B1, F1, entries=(b"c",))
B3, F3 = child(B2, F2)


class Nowhere:
    def send(self, to: str, message: object) -> None:
        pass

    def broadcast(self, message: object) -> None:
        pass


class Clock:
    def now_ms(self) -> int:
        return B3.timestamp_ms

    def call_later(self, delay_ms: int, callback: object) -> Clock:
        return self

    def cancel(self) -> None:
        pass


def open_core(tmp_path: Path) -> tuple[Core, SqliteStore, MerkleLog]:
    store = SqliteStore.open(tmp_path)
    log = MerkleLog.open(tmp_path / "log")
    core = Core(
        name=KEYS[0].name,
        committee=COMMITTEE,
        signer=KEYS[0],
        transport=Nowhere(),  # type: ignore[arg-type]
        clock=Clock(),
        block_store=store,
        safety_store=store,
        ledger=log,
    )
    return core, store, log


def test_ledger_behind_the_committed_mark_is_replayed(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path)
    for block in (B1, B2, B3):
        store.put_block(block)
    store.set_committed(B1)
    store.set_committed(B2)  # ... and the process died before appending B2 to the log
    store.close()
    log = MerkleLog.open(tmp_path / "log")
    log.append(B1.entries)
    log.close()

    core, store, log = open_core(tmp_path)
    assert core.head == B2
    assert log.size == 3 and log.root() == B2.root
    core.start()
    assert B3.hash in core.tree  # the uncommitted block was reloaded from the store
    store.close()
    log.close()


def test_ledger_that_disagrees_with_the_chain_is_refused(tmp_path: Path) -> None:
    store = SqliteStore.open(tmp_path)
    store.set_committed(B1)
    store.close()
    log = MerkleLog.open(tmp_path / "log")
    log.append([b"not", b"these"])
    log.close()
    with pytest.raises(SafetyViolationError):
        open_core(tmp_path)
