"""Pacemaker timeout growth, and the client API's back-pressure and lookups."""

from __future__ import annotations

import pytest
from builders import COMMITTEE, KEYS

from chain.consensus.api import LedgerAPI
from chain.consensus.core import Core
from chain.consensus.errors import InvalidMessageError, UnknownBlockError
from chain.consensus.ledger import MemoryLedger
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.pacemaker import Pacemaker, PacemakerConfig
from chain.consensus.store import MemoryStore
from chain.errors import MempoolFullError
from chain.merkle import leaf_hash


def test_timeouts_grow_while_views_fail_and_reset_on_progress() -> None:
    p = Pacemaker(PacemakerConfig(base_ms=100, max_ms=1_000, multiplier=2))
    assert p.duration_ms() == 100
    durations = []
    for view in range(2, 8):
        p.timed_out()
        assert p.advance(view, by_qc=False)
        durations.append(p.duration_ms())
    assert durations == [200, 400, 800, 1000, 1000, 1000]
    assert not p.advance(3, by_qc=True)  # never backwards
    assert p.advance(8, by_qc=True) and p.duration_ms() == 100


class Nowhere:
    def send(self, to: str, message: object) -> None:
        pass

    def broadcast(self, message: object) -> None:
        pass


class Frozen:
    def now_ms(self) -> int:
        return 0

    def call_later(self, delay_ms: int, callback: object) -> Frozen:
        return self

    def cancel(self) -> None:
        pass


def make_api(mempool: MempoolConfig) -> LedgerAPI:
    store = MemoryStore()
    ledger = MemoryLedger()
    ledger_core = Core(
        name=KEYS[0].name,
        committee=COMMITTEE,
        signer=KEYS[0],
        transport=Nowhere(),  # type: ignore[arg-type]
        clock=Frozen(),
        block_store=store,
        safety_store=store,
        ledger=ledger,
        mempool=Mempool(mempool),
    )
    return LedgerAPI(ledger_core)


def test_busy_mempool_says_retry_later() -> None:
    api = make_api(MempoolConfig(max_entries=3))
    assert api.submit_entries([b"a", b"b"]) == [leaf_hash(b"a"), leaf_hash(b"b")]
    with pytest.raises(MempoolFullError):
        api.submit_entries([b"c", b"d"])
    api.submit_entries([b"c"])


def test_lookups_of_unknown_things() -> None:
    api = make_api(MempoolConfig())
    assert api.committed(leaf_hash(b"nope")) is None
    assert api.latest_checkpoint() is None and api.block(5) is None
    with pytest.raises(UnknownBlockError):
        api.inclusion_proof_by_hash(leaf_hash(b"nope"), 0)
    with pytest.raises(InvalidMessageError):
        api.inclusion_proof(0, 1)  # beyond the committed size
    with pytest.raises(InvalidMessageError):
        api.consistency_proof(2, 1)
