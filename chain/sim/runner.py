"""One simulated run from a seed, and the checks that judge it.

A run has two phases. *Chaos*: the network drops, duplicates, delays and reorders
messages, partitions come and go, honest replicas crash (sometimes between persisting
a decision and sending it) and restart from their disk, clients submit entries (at a
rate drawn per scenario, from a steady stream to long quiet gaps in which the chain
goes idle), and up to f validators are Byzantine. *Heal*: partitions end, drops stop,
every honest replica is restarted, clients keep submitting; the run continues until
every honest replica has committed new blocks or the liveness deadline passes.

Checks: agreement (no two honest replicas ever commit different blocks at one height,
and no replica detects a fork); every stored committed checkpoint verifies against the
trust file with :func:`chain.checkpoint.verify_checkpoint` and names the root the chain
committed at that size; liveness after the heal.
"""

from __future__ import annotations

import contextlib
import hashlib
import random
from dataclasses import dataclass, field
from functools import cache, partial

from chain.checkpoint import verify_checkpoint
from chain.consensus.blocks import Block, Limits
from chain.consensus.committee import Committee
from chain.consensus.core import CoreConfig
from chain.consensus.errors import SafetyViolationError
from chain.consensus.pacemaker import PacemakerConfig
from chain.consensus.safety import Rules
from chain.errors import ChainError
from chain.keys import Signer, verify_signature
from chain.sim.broken import VARIANTS
from chain.sim.byzantine import BEHAVIOURS, Behaviour
from chain.sim.network import NetworkFaults, SimNetwork
from chain.sim.node import SimNode
from chain.sim.scheduler import Scheduler
from chain.trust import TrustFile, Validator, make_genesis

CHAIN_ID = "sim.notary.example"
HEARTBEAT_MS = 1_500
_VERIFIED: dict[tuple[bytes, bytes, bytes], bool] = {}


def memo_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verification memoized by (key, message, signature): simulation only.

    The answer for one triple never changes, and n replicas verify the same signatures.
    """
    key = (public_key, message, signature)
    result = _VERIFIED.get(key)
    if result is None:
        if len(_VERIFIED) > 500_000:
            _VERIFIED.clear()
        result = _VERIFIED[key] = verify_signature(public_key, message, signature)
    return result


@cache
def signers(n: int) -> tuple[Signer, ...]:
    """Deterministic keys of validators ``v0 .. v(n-1)``."""
    return tuple(
        Signer.from_seed(f"v{i}", hashlib.sha256(f"sim/validator/{i}".encode()).digest())
        for i in range(n)
    )


@cache
def trust_file(n: int) -> TrustFile:
    """The genesis of the simulated chain with ``n`` validators."""
    return make_genesis(CHAIN_ID, [Validator(s.name, s.public_key) for s in signers(n)])


@dataclass(frozen=True)
class Scenario:
    """The shape of a run, drawn from its seed."""

    seed: int
    n: int
    byzantine: tuple[tuple[int, str], ...]
    observer: bool
    chaos_ms: int
    live_ms: int = 40_000
    broadcast_votes: bool = True
    # Logical ms between client submissions in the chaos phase (0: none but the random
    # events'); long gaps let the chain go idle, so waking up is exercised too.
    load_ms: int = 0


def draw_scenario(
    seed: int, *, n: int | None = None, byzantine: bool = True, broadcast_votes: bool | None = None
) -> Scenario:
    """The scenario of ``seed`` (committee size, faulty validators and their behaviour);
    ``n`` and ``broadcast_votes`` override what the seed would draw."""
    rng = random.Random(f"scenario/{seed}")  # noqa: S311 - a simulation, not crypto
    size = n if n is not None else rng.choice((4, 4, 4, 4, 4, 7))
    f = (size - 1) // 3
    count = rng.randint(0, f) if byzantine else 0
    faulty = rng.sample(range(size), count)
    kinds = sorted(BEHAVIOURS)
    chosen = tuple((i, rng.choice(kinds)) for i in sorted(faulty))
    observer = rng.random() < 0.3
    chaos_ms = rng.randint(1_500, 6_000)
    # Both vote routings are exercised: to every validator, or to the next leader only.
    votes = rng.random() < 0.5
    if broadcast_votes is not None:
        votes = broadcast_votes
    load = rng.choice((0, 100, 300, 1_000, 3_000))
    return Scenario(seed, size, chosen, observer, chaos_ms, broadcast_votes=votes, load_ms=load)


@dataclass
class Outcome:
    """What a run did and what the checks found."""

    scenario: Scenario
    violations: list[str] = field(default_factory=list)
    live: bool = True
    committed: int = 0
    steps: int = 0
    liveness: str = ""

    @property
    def safe(self) -> bool:
        """No agreement or checkpoint violation."""
        return not self.violations

    @property
    def ok(self) -> bool:
        """Safe and live."""
        return self.safe and self.live

    def describe(self) -> str:
        """One line naming the seed that replays this run."""
        s = self.scenario
        byz = ",".join(f"v{i}:{k}" for i, k in s.byzantine) or "none"
        verdict = "ok" if self.ok else ("UNSAFE" if not self.safe else "NOT LIVE")
        detail = "; ".join(self.violations[:3]) or self.liveness
        votes = "all" if s.broadcast_votes else "leader"
        return (
            f"seed={s.seed} n={s.n} byzantine={byz} observer={s.observer} votes={votes} {verdict} "
            f"committed={self.committed} steps={self.steps} {detail}".rstrip()
        )


class Simulation:
    """Builds the cluster of a scenario and runs it."""

    def __init__(self, scenario: Scenario, rules: type[Rules] = Rules) -> None:
        """Prepare the replicas (nothing runs until :meth:`run`)."""
        self.scenario = scenario
        self.rng = random.Random(scenario.seed)  # noqa: S311 - a simulation, not crypto
        self.scheduler = Scheduler()
        self.network = SimNetwork(self.scheduler, self.rng)
        self.trust = trust_file(scenario.n)
        self.committee = Committee(self.trust, verifier=memo_verify)
        self.config = CoreConfig(
            limits=Limits(max_entries=256, max_clock_skew_ms=2_000),
            pacemaker=PacemakerConfig(base_ms=400, max_ms=3_200),
            batch_delay_ms=20,
            sync_retry_ms=300,
            broadcast_votes=scenario.broadcast_votes,
            heartbeat_ms=HEARTBEAT_MS,
        )
        self.outcome = Outcome(scenario)
        self.commits: dict[int, bytes] = {}
        self.roots: dict[int, bytes] = {}
        self.nodes: list[SimNode] = []
        byz = dict(scenario.byzantine)
        for i, signer in enumerate(signers(scenario.n)):
            kind = byz.get(i)
            copies = 2 if kind == "twin" else 1
            for c in range(copies):
                behaviour: Behaviour | None = None
                if kind is not None:
                    behaviour = BEHAVIOURS[kind](self.rng)
                self.nodes.append(
                    self._node(f"v{i}" + "'" * c, signer.name, signer, behaviour, rules)
                )
        if scenario.observer:
            self.nodes.append(self._node("observer", "observer", None, None, rules))
        self.network.assign_twin_sides()

    def _node(
        self,
        instance: str,
        name: str,
        signer: Signer | None,
        behaviour: Behaviour | None,
        rules: type[Rules],
    ) -> SimNode:
        return SimNode(
            instance=instance,
            name=name,
            signer=signer,
            committee=self.committee,
            network=self.network,
            scheduler=self.scheduler,
            config=self.config,
            rules=rules(),
            clock_offset_ms=self.rng.randint(-300, 300),
            behaviour=behaviour,
            on_commit=self._on_commit,
        )

    def _on_commit(self, node: SimNode, block: object) -> None:
        assert isinstance(block, Block)
        if not node.honest:
            return
        known = self.commits.setdefault(block.height, block.hash)
        if known != block.hash:
            self.outcome.violations.append(
                f"{node.instance} committed {block.hash.hex()[:12]} at height {block.height}, "
                f"another honest replica committed {known.hex()[:12]}"
            )
        self.roots.setdefault(block.tree_size, block.root)

    @property
    def honest(self) -> list[SimNode]:
        """The honest replicas (validators and observer)."""
        return [n for n in self.nodes if n.honest]

    def run(self) -> Outcome:
        """Run both phases and the checks."""
        try:
            self._run()
        except SafetyViolationError as e:
            self.outcome.violations.append(f"replica detected: {e}")
        self.outcome.steps = self.scheduler.steps
        self.outcome.committed = len(self.commits)
        self._check_checkpoints()
        return self.outcome

    def _run(self) -> None:
        s = self.scheduler
        start = s.now
        for node in self.nodes:
            node.start()
        self._chaos_events(start, start + self.scenario.chaos_ms)
        s.run_until(start + self.scenario.chaos_ms)
        # Heal: one network, no drops, every honest replica up.
        self.network.groups = None
        self.network.faults = NetworkFaults(0.0, 0.02, 1, 30)
        for node in self.honest:
            node.store.after_save = None
            if not node.alive:
                node.start()
        base = max((self._height(n) for n in self.honest), default=0)
        target = base + 2
        # Clients keep submitting (an idle chain needs no new blocks to be live).
        self._load(s.now + 50, s.now + self.scenario.live_ms, 300)
        s.run_until(s.now + self.scenario.live_ms, stop=lambda: self._live(target))
        self.outcome.live = self._live(target)
        if not self.outcome.live:
            lagging = {n.instance: self._height(n) for n in self.honest}
            self.outcome.liveness = f"not all honest replicas reached height {target}: {lagging}"

    def _height(self, node: SimNode) -> int:
        return node.core.head.height if node.core is not None else -1

    def _live(self, target: int) -> bool:
        return all(self._height(n) >= target for n in self.honest)

    def _submit(self, nodes: list[SimNode]) -> None:
        alive = [n for n in nodes if n.core is not None and n.core.mempool is not None]
        if not alive:
            return
        node = self.rng.choice(alive)
        assert node.core is not None and node.core.mempool is not None
        count = self.rng.randint(1, 20)
        entries = [self.rng.randbytes(self.rng.randint(8, 64)) for _ in range(count)]
        with contextlib.suppress(ChainError):  # a full mempool is back-pressure, not a fault
            node.core.mempool.add(entries)

    def _load(self, start: int, end: int, every_ms: int) -> None:
        """Submit entries to a random honest replica every ``every_ms`` in [start, end)."""
        s = self.scheduler
        for t in range(start, end, every_ms):
            s.call_later(t - s.now, lambda: self._submit(self.honest))

    def _chaos_events(self, start: int, end: int) -> None:
        s, rng = self.scheduler, self.rng
        if self.scenario.load_ms:
            self._load(start + rng.randint(0, self.scenario.load_ms), end, self.scenario.load_ms)
        t = start
        instances = [n.instance for n in self.nodes]
        while True:
            t += rng.randint(100, 800)
            if t >= end:
                break
            action = rng.random()
            delay = t - s.now
            if action < 0.25:
                s.call_later(delay, lambda: self._submit(self.honest))
            elif action < 0.40:
                cut = rng.sample(instances, rng.randint(1, len(instances) - 1))
                groups = [frozenset(cut), frozenset(set(instances) - set(cut))]
                s.call_later(delay, partial(self._set_groups, groups))
            elif action < 0.50:
                s.call_later(delay, partial(self._set_groups, None))
            elif action < 0.62:
                faults = NetworkFaults(
                    drop=rng.choice((0.0, 0.05, 0.2, 0.4)),
                    duplicate=rng.choice((0.0, 0.1, 0.3)),
                    min_delay_ms=1,
                    max_delay_ms=rng.choice((10, 50, 200, 600)),
                )
                s.call_later(delay, partial(self._set_faults, faults))
            elif action < 0.74:
                victim = rng.choice(self.honest)
                s.call_later(delay, victim.crash)
            elif action < 0.84:
                victim = rng.choice(self.honest)
                s.call_later(delay, victim.crash_on_next_save)
            else:
                victim = rng.choice(self.honest)
                s.call_later(delay, partial(self._restart, victim))

    def _set_groups(self, groups: list[frozenset[str]] | None) -> None:
        self.network.groups = groups

    def _set_faults(self, faults: NetworkFaults) -> None:
        self.network.faults = faults

    def _restart(self, node: SimNode) -> None:
        if not node.alive:
            node.start()

    def _check_checkpoints(self) -> None:
        for node in self.honest:
            for size, note in node.store.checkpoints().items():
                try:
                    verified = verify_checkpoint(note, self.trust)
                except ChainError as e:
                    self.outcome.violations.append(f"{node.instance}: checkpoint {size}: {e}")
                    continue
                cp = verified.checkpoint
                root = self.roots.get(cp.size)
                if cp.size != size or (root is not None and root != cp.root):
                    self.outcome.violations.append(
                        f"{node.instance}: committed checkpoint at size {size} names a root "
                        "the chain did not commit"
                    )


def run_seed(
    seed: int, *, variant: str = "correct", n: int | None = None, votes: bool | None = None
) -> Outcome:
    """Run the scenario of ``seed`` with the rule ``variant`` (see ``broken.VARIANTS``);
    ``n`` and ``votes`` (broadcast votes or not) override the seed's draw."""
    scenario = draw_scenario(seed, n=n, broadcast_votes=votes)
    return Simulation(scenario, VARIANTS[variant]).run()
