"""A validator crashed at any instant between persisting a decision and sending it, then
restarted from its disk, never signs two conflicting votes or proposals.

Validator v1 is killed right after its k-th safety-state write (before the vote, timeout
or proposal it guards leaves), for every k up to a bound, and restarted 30 ms later from
the same store; every message it ever sent is recorded and checked for equivocation."""

from __future__ import annotations

import pytest

from chain.consensus.messages import Message, Proposal, Vote
from chain.sim.node import SimNode, SimulatedCrash
from chain.sim.runner import Scenario, Simulation


def run_with_crash_at(k: int) -> tuple[Simulation, list[Message]]:
    sim = Simulation(Scenario(seed=1000 + k, n=4, byzantine=(), observer=False, chaos_ms=0))
    victim = next(n for n in sim.nodes if n.instance == "v1")
    sent: list[Message] = []
    original = sim.network.send

    def spy(src: str, to: str, message: Message) -> None:
        if src == "v1":
            sent.append(message)
        original(src, to, message)

    sim.network.send = spy  # type: ignore[method-assign]
    saves = [0]

    def after_save(node: SimNode = victim) -> None:
        saves[0] += 1
        if saves[0] == k:
            sim.scheduler.call_later(30, node.start)
            raise SimulatedCrash(node.instance)

    victim.store.after_save = after_save
    for node in sim.nodes:
        node.start()
    start = sim.scheduler.now
    for t in range(10, 3_000, 100):  # client load keeps the chain busy (an idle one rests)
        sim.scheduler.call_later(t, lambda: sim._submit(sim.nodes))
    sim.scheduler.run_until(start + 3_000)
    assert victim.crashes == 1, f"crash point {k} was never reached"
    return sim, sent


@pytest.mark.parametrize("k", range(1, 31))
def test_no_equivocation_after_crash_between_persist_and_send(k: int) -> None:
    sim, sent = run_with_crash_at(k)
    votes: dict[int, bytes] = {}
    proposals: dict[int, bytes] = {}
    for message in sent:
        if isinstance(message, Vote):
            assert votes.setdefault(message.view, message.block_hash) == message.block_hash, (
                f"v1 voted twice in view {message.view} after crash point {k}"
            )
        elif isinstance(message, Proposal):
            h = message.block.hash
            assert proposals.setdefault(message.view, h) == h, (
                f"v1 proposed twice in view {message.view} after crash point {k}"
            )
    assert votes, "v1 never voted"
    # And the cluster, v1 included, went on committing the same chain.
    assert not sim.outcome.violations
    heights = [n.core.head.height for n in sim.nodes if n.core is not None]
    assert len(heights) == 4 and min(heights) >= 5
