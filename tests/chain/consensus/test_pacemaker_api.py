"""Pacemaker timeout growth, and the client service's back-pressure and lookups over a
core with in-memory stores."""

from __future__ import annotations

import pytest
from builders import COMMITTEE, KEYS

from chain.consensus.core import Core
from chain.consensus.ledger import MemoryLedger
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.pacemaker import Pacemaker, PacemakerConfig
from chain.consensus.store import MemoryStore
from chain.errors import EntryError, MempoolFullError, NotFoundError
from chain.merkle import leaf_hash
from chain.node.service import LedgerService


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


def make_service(mempool: MempoolConfig) -> LedgerService:
    store = MemoryStore()
    core = Core(
        name=KEYS[0].name,
        committee=COMMITTEE,
        signer=KEYS[0],
        transport=Nowhere(),  # type: ignore[arg-type]
        clock=Frozen(),
        block_store=store,
        safety_store=store,
        ledger=MemoryLedger(),
        mempool=Mempool(mempool),
    )
    return LedgerService([core], store)


async def test_busy_mempool_says_retry_later() -> None:
    service = make_service(MempoolConfig(max_entries=3))
    result = await service.submit([b"a", b"b"])
    assert result.entry_hashes == (leaf_hash(b"a"), leaf_hash(b"b")) and result.accepted == 2
    with pytest.raises(MempoolFullError):
        await service.submit([b"c", b"d"])
    assert (await service.submit([b"c"])).accepted == 1


async def test_lookups_of_unknown_things() -> None:
    service = make_service(MempoolConfig())
    assert service.lookup(leaf_hash(b"nope")) is None
    assert await service.wait_committed(leaf_hash(b"nope"), 0.01) is None
    assert service.latest_checkpoint() is None
    with pytest.raises(NotFoundError):
        service.block(5)
    with pytest.raises(NotFoundError):
        service.inclusion_proof(tree_size=1, entry_hash=leaf_hash(b"nope"))
    with pytest.raises(NotFoundError):
        service.inclusion_proof(tree_size=1, leaf_index=0)  # beyond the committed size
    with pytest.raises(EntryError):
        service.consistency_proof(2, 1)
    with pytest.raises(EntryError):
        await service.submit([b""])
