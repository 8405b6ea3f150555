"""One simulated replica: an honest :class:`Core` (optionally wrapped by a Byzantine
behaviour) plus the "disk" that survives its crashes.

A crash drops the core and everything in memory; timers of the old incarnation never fire.
A restart builds a new core from the same :class:`MemoryStore` and :class:`MemoryLedger`,
i.e. from exactly what a real node would find on disk. ``crash_on_next_save`` crashes the
node right after its safety state is written and before the message it guards leaves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from chain.consensus.committee import Committee
from chain.consensus.core import Core, CoreConfig
from chain.consensus.ledger import MemoryLedger
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.messages import Message
from chain.consensus.safety import Rules
from chain.consensus.store import MemoryStore
from chain.keys import Signer
from chain.sim.network import SimNetwork
from chain.sim.scheduler import Scheduler, SimTimer

if TYPE_CHECKING:
    from chain.sim.byzantine import Behaviour


class SimulatedCrash(Exception):
    """Raised inside a handler to model the process dying at that instant."""


class SimNode:
    """A replica instance in the simulation."""

    def __init__(
        self,
        *,
        instance: str,
        name: str,
        signer: Signer | None,
        committee: Committee,
        network: SimNetwork,
        scheduler: Scheduler,
        config: CoreConfig,
        rules: Rules,
        clock_offset_ms: int = 0,
        behaviour: Behaviour | None = None,
        on_commit: Callable[[SimNode, object], None] | None = None,
    ) -> None:
        """Create the instance with an empty disk; call :meth:`start`."""
        self.instance = instance
        self.name = name
        self.signer = signer
        self.committee = committee
        self.network = network
        self.scheduler = scheduler
        self.config = config
        self.rules = rules
        self.clock_offset_ms = clock_offset_ms
        self.behaviour = behaviour
        self.on_commit = on_commit
        self.store = MemoryStore()
        self.ledger = MemoryLedger()
        self.core: Core | None = None
        self.alive = False
        self.incarnation = 0
        self.crashes = 0
        self.mempool_config = MempoolConfig(batch_entries=64, max_entries=10_000)
        network.attach(name, instance, self.receive)

    @property
    def honest(self) -> bool:
        """Whether this instance runs the protocol unmodified."""
        return self.behaviour is None

    # -- Clock and Transport for the core -------------------------------------------------

    def now_ms(self) -> int:
        """Logical time plus this node's clock offset."""
        return self.scheduler.now + self.clock_offset_ms

    def call_later(self, delay_ms: int, callback: Callable[[], None]) -> SimTimer:
        """Schedule ``callback`` for this incarnation only."""
        incarnation = self.incarnation

        def run() -> None:
            if self.alive and self.incarnation == incarnation:
                self._run(callback)

        return self.scheduler.call_later(delay_ms, run)

    def send(self, to: str, message: Message) -> None:
        """Transport.send: through the behaviour (if any), then the network."""
        if self.behaviour is not None:
            self.behaviour.outgoing(self, to, message)
        else:
            self.network.send(self.instance, to, message)

    def broadcast(self, message: Message) -> None:
        """Transport.broadcast: to every other name."""
        for name in self.network.names():
            if name != self.name:
                self.send(name, message)

    def raw_send(self, to: str, message: Message) -> None:
        """Send bypassing the behaviour (used by behaviours themselves)."""
        self.network.send(self.instance, to, message)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Boot a new incarnation from the disk."""
        self.alive = True
        self.incarnation += 1
        self.core = Core(
            name=self.name,
            committee=self.committee,
            signer=self.signer,
            transport=self,
            clock=self,
            block_store=self.store,
            safety_store=self.store if self.signer is not None else None,
            ledger=self.ledger,
            mempool=Mempool(self.mempool_config),
            config=self.config,
            rules=self.rules,
        )
        if self.on_commit is not None:
            hook = self.on_commit
            self.core.commit_listeners.append(lambda block: hook(self, block))
        self._run(self.core.start)

    def crash(self) -> None:
        """Lose everything but the disk."""
        if self.alive:
            self.alive = False
            self.core = None
            self.crashes += 1
            self.store.after_save = None

    def crash_on_next_save(self) -> None:
        """Die right after the next safety-state write, before the message leaves."""

        def die() -> None:
            self.store.after_save = None
            raise SimulatedCrash(self.instance)

        self.store.after_save = die

    def receive(self, sender: str, message: Message) -> None:
        """Network delivery."""
        if not self.alive or self.core is None:
            return
        if self.behaviour is not None:
            self.behaviour.incoming(self, sender, message)
        core = self.core
        self._run(lambda: core.handle(sender, message))

    def _run(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except SimulatedCrash:
            self.crash()
