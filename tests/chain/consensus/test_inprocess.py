"""Four validators and an observer in one process over the in-memory transport, on asyncio
with the wall clock: entries submitted through the client service are committed, proven and covered
by a checkpoint that verifies against the trust file."""

from __future__ import annotations

import asyncio
import base64

from chain.checkpoint import verify_checkpoint
from chain.consensus.committee import Committee
from chain.consensus.core import Core, CoreConfig
from chain.consensus.ledger import MemoryLedger
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.pacemaker import PacemakerConfig
from chain.consensus.store import MemoryStore
from chain.consensus.transport import AsyncioClock, InMemoryNetwork
from chain.merkle import leaf_hash, verify_consistency, verify_inclusion
from chain.node.service import LedgerService
from chain.sim.runner import signers, trust_file


async def wait_for(condition, timeout: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached before the deadline"
        await asyncio.sleep(0.01)


async def test_four_validators_commit_and_checkpoint() -> None:
    loop = asyncio.get_running_loop()
    trust = trust_file(4)
    committee = Committee(trust)
    network = InMemoryNetwork(loop.call_soon)
    config = CoreConfig(pacemaker=PacemakerConfig(base_ms=500, max_ms=2_000), batch_delay_ms=5)
    cores: list[Core] = []
    for signer in [*signers(4), None]:
        name = signer.name if signer is not None else "observer"
        store = MemoryStore()
        core: Core
        core = Core(
            name=name,
            committee=committee,
            signer=signer,
            transport=network.register(name, lambda s, m, n=name: by_name[n].handle(s, m)),
            clock=AsyncioClock(loop),
            block_store=store,
            safety_store=store if signer is not None else None,
            ledger=MemoryLedger(),
            mempool=Mempool(MempoolConfig()),
            config=config,
        )
        cores.append(core)
    by_name = {c.name: c for c in cores}
    for core in cores:
        core.start()

    # The client service over the second validator (the embedded mode's service).
    service = LedgerService([cores[1]], cores[1].store)  # type: ignore[arg-type]
    entries = [f"entry {i}".encode() for i in range(50)]
    result = await service.submit(entries)
    leaves = list(result.entry_hashes)
    assert leaves == [leaf_hash(e) for e in entries]
    done = await asyncio.gather(*(service.wait_committed(x, 10) for x in leaves))
    assert all(d is not None for d in done)
    infos = [d for d in done if d is not None]
    assert sorted(d.leaf_index for d in infos) == list(range(50))

    # Every replica, the observer included, reaches the same log.
    target = max(d.tree_size for d in infos)
    await wait_for(lambda: all(c.ledger.size >= target for c in cores))
    await wait_for(lambda: all(c.store.checkpoint(target) is not None for c in cores))
    roots = {c.ledger.root() for c in cores if c.ledger.size == target}
    assert len(roots) == 1

    note = service.latest_checkpoint()
    assert note is not None
    verified = verify_checkpoint(note, trust)
    size, root = verified.checkpoint.size, verified.checkpoint.root
    first = infos[0]
    proof = service.inclusion_proof(tree_size=size, leaf_index=first.leaf_index)
    verify_inclusion(first.leaf_index, size, leaves[0], list(proof.hashes), root)
    old = service.block(first.block_height)
    assert 0 < old["tree_size"] <= size
    cons = service.consistency_proof(old["tree_size"], size)
    old_root = base64.b64decode(old["root"])
    verify_consistency(old["tree_size"], size, old_root, root, list(cons.hashes))
