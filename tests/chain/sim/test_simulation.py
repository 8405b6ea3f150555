"""The deterministic simulation in CI: random schedules must be safe and live, a broken
rule variant must be caught, runs replay exactly from their seed, a lagging replica
catches up, and each Byzantine behaviour is survived.

``SIM_SCHEDULES`` and ``SIM_SEED`` override the number of schedules and the first seed;
a failure names the seed (replay: ``python -m chain.sim --seed S --schedules 1``).
"""

from __future__ import annotations

import os

import pytest

from chain.consensus.messages import BlockResponse, Message, Proposal, Timeout
from chain.sim.byzantine import BEHAVIOURS
from chain.sim.runner import HEARTBEAT_MS, Scenario, Simulation, run_seed

SCHEDULES = int(os.environ.get("SIM_SCHEDULES", "1000"))
FIRST_SEED = int(os.environ.get("SIM_SEED", "0"))


@pytest.mark.timeout(900)
def test_random_schedules_are_safe_and_live() -> None:
    failures = []
    for seed in range(FIRST_SEED, FIRST_SEED + SCHEDULES):
        outcome = run_seed(seed)
        if not outcome.ok:
            failures.append(outcome.describe())
    assert not failures, (
        "failing schedules (replay with python -m chain.sim --seed S "
        "--schedules 1):\n" + "\n".join(failures)
    )


def test_one_chain_commit_is_caught_as_unsafe() -> None:
    """The checks have teeth: committing on a 1-chain forks honest replicas."""
    for seed in range(60):
        if not run_seed(seed, variant="one-chain-commit", votes=False).safe:
            return
    raise AssertionError("the checks did not flag the one-chain commit rule in 60 seeds")


def test_runs_replay_exactly() -> None:
    a, b = run_seed(7), run_seed(7)
    assert (a.steps, a.committed, a.violations) == (b.steps, b.committed, b.violations)
    assert a.steps > 0


@pytest.mark.parametrize("kind", sorted(BEHAVIOURS))
def test_each_byzantine_behaviour_is_survived(kind: str) -> None:
    for seed in range(3):
        sim = Simulation(Scenario(seed, 4, ((seed % 4, kind),), True, 3_000))
        outcome = sim.run()
        assert outcome.ok, outcome.describe()


def test_lagging_replica_catches_up_by_fetching_verified_blocks() -> None:
    sim = Simulation(Scenario(5, 4, (), False, 0))
    responses: list[Message] = []
    original = sim.network.send

    def spy(src: str, to: str, message: Message) -> None:
        if to == "v2" and isinstance(message, BlockResponse):
            responses.append(message)
        original(src, to, message)

    sim.network.send = spy  # type: ignore[method-assign]
    for node in sim.nodes:
        node.start()
    lagging = next(n for n in sim.nodes if n.instance == "v2")
    start = sim.scheduler.now
    for t in range(0, 8_000, 400):
        sim.scheduler.call_later(t, lambda: sim._submit(sim.nodes))
    sim.scheduler.run_until(start + 5_000, stop=lambda: lagging.store.committed_head() is not None)
    lagging.crash()
    sim.scheduler.run_until(start + 8_000)
    behind = lagging.store.committed_head()
    others = [n.core.head.height for n in sim.nodes if n.core is not None]
    # The three others went on alone (n = 4 tolerates one down).
    assert behind is not None and min(others) >= behind.height + 5
    lagging.start()
    assert lagging.core is not None and lagging.core.head.height == behind.height
    target = max(others)
    core = lagging.core
    sim.scheduler.run_until(start + 20_000, stop=lambda: core.head.height >= target)
    assert lagging.core.head.height >= target
    assert responses, "v2 should have fetched the chain from its peers"
    assert lagging.ledger.root() == sim.roots[lagging.ledger.size]
    assert not sim.outcome.violations


def test_idle_chain_goes_quiet_without_timeouts_and_wakes_up_on_entries() -> None:
    sim = Simulation(Scenario(11, 4, (), False, 0))
    sent: list[Message] = []
    original = sim.network.send

    def spy(src: str, to: str, message: Message) -> None:
        sent.append(message)
        original(src, to, message)

    sim.network.send = spy  # type: ignore[method-assign]
    for node in sim.nodes:
        node.start()
    s = sim.scheduler
    sim._submit(sim.nodes)
    s.run_until(s.now + 10_000, stop=lambda: all(n.ledger.size > 0 for n in sim.nodes))
    assert all(n.ledger.size > 0 for n in sim.nodes), "the first entries were not committed"
    s.run_until(s.now + 2_000)  # the blocks that commit them
    sent_before = len(sent)
    s.run_until(s.now + 30_000)  # 30 s of logical time with nothing to do
    idle = sent[sent_before:]
    proposals = len({m.block.hash for m in idle if isinstance(m, Proposal)})
    # Without quiescence: a block every view (tens per second). Now: one per heartbeat.
    assert proposals <= 30_000 // HEARTBEAT_MS + 1, proposals
    assert not [m for m in idle if isinstance(m, Timeout)], "timeouts on an idle chain"
    # Work wakes it: the next entries commit within a few views.
    sizes = [n.ledger.size for n in sim.nodes]
    woken = s.now
    sim._submit(sim.nodes)
    while s.now - woken < 3_000 and not all(n.ledger.size > sizes[0] for n in sim.nodes):
        s.run_until(s.now + 50)
    assert all(n.ledger.size > sizes[0] for n in sim.nodes), "not committed within 3 s"
    assert not sim.outcome.violations
