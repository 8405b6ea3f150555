"""A seeded faulty network: delays, drops, duplicates, reordering and partitions.

Messages are objects (no encoding), delivered through the :class:`Scheduler`. Every
delivery draws from the simulation's one RNG, so a seed fixes the whole schedule.
Partitions are sets of instance ids; a message crosses only if sender and receiver are
in the same group when it arrives. Twins (two instances of one validator name) each
reach only the peers assigned to their side.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from chain.consensus.messages import Message
from chain.sim.scheduler import Scheduler


@dataclass
class NetworkFaults:
    """The current misbehaviour of the network (changed during a run)."""

    drop: float = 0.0
    duplicate: float = 0.0
    min_delay_ms: int = 1
    max_delay_ms: int = 20


Receiver = Callable[[str, Message], None]


class SimNetwork:
    """Instances attached by id; names map to one instance (or two, for twins)."""

    def __init__(self, scheduler: Scheduler, rng: random.Random) -> None:
        """An empty, fault-free network."""
        self.scheduler = scheduler
        self.rng = rng
        self.faults = NetworkFaults()
        self.groups: list[frozenset[str]] | None = None
        self._instances: dict[str, list[str]] = {}  # name -> instance ids
        self._receivers: dict[str, Receiver] = {}  # instance id -> receiver
        self._twin_side: dict[str, str] = {}  # instance id -> twin instance it talks to
        self._name_of: dict[str, str] = {}
        self.sent = 0

    def attach(self, name: str, instance: str, receiver: Receiver) -> None:
        """Attach ``instance`` (an id) serving validator/observer ``name``."""
        self._instances.setdefault(name, []).append(instance)
        self._receivers[instance] = receiver
        self._name_of[instance] = name

    def names(self) -> list[str]:
        """All attached names."""
        return list(self._instances)

    def assign_twin_sides(self) -> None:
        """Give each instance one twin of every twinned name to talk to."""
        for twins in self._instances.values():
            if len(twins) > 1:
                for instance in self._receivers:
                    if instance not in twins:
                        self._twin_side[instance + "|" + twins[0]] = self.rng.choice(twins)

    def _reaches(self, src: str, dst: str) -> bool:
        if self.groups is not None and not any(src in g and dst in g for g in self.groups):
            return False
        for a, b in ((src, dst), (dst, src)):
            for twins in self._instances.values():
                if b in twins and len(twins) > 1 and a not in twins:
                    return self._twin_side.get(a + "|" + twins[0], b) == b
        return True

    def send(self, src: str, to: str, message: Message) -> None:
        """Send from instance ``src`` to every instance named ``to``, with faults."""
        f = self.faults
        for dst in self._instances.get(to, ()):
            if dst == src:
                continue
            if self.rng.random() < f.drop:
                continue
            copies = 2 if self.rng.random() < f.duplicate else 1
            for _ in range(copies):
                delay = self.rng.randint(f.min_delay_ms, f.max_delay_ms)
                self.sent += 1
                self.scheduler.call_later(delay, self._deliverer(src, dst, message))

    def _deliverer(self, src: str, dst: str, message: Message) -> Callable[[], None]:
        sender = self._name_of[src]

        def deliver() -> None:
            if self._reaches(src, dst):
                self._receivers[dst](sender, message)

        return deliver
