"""The mempool: entries waiting to be proposed, deduplicated by leaf hash and bounded.

Admission is all-or-nothing per batch: either every new entry of a submission fits or
:class:`MempoolFullError` tells the client to retry later (back-pressure, never unbounded
memory). Entries stay until committed, so a proposal that fails is simply re-proposed.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from chain.consensus.errors import InvalidMessageError
from chain.errors import MempoolFullError
from chain.merkle import leaf_hash


@dataclass(frozen=True)
class MempoolConfig:
    """Bounds of the mempool and the batch a leader takes per block."""

    max_entries: int = 100_000
    max_bytes: int = 64 << 20
    max_entry_bytes: int = 64 << 10
    batch_entries: int = 5_000
    batch_bytes: int = 2 << 20
    batch_delay_ms: int = 50


class Mempool:
    """Pending entries in arrival order, keyed by leaf hash."""

    def __init__(self, config: MempoolConfig) -> None:
        """An empty mempool with ``config``'s bounds."""
        self.config = config
        self._entries: dict[bytes, bytes] = {}
        self._bytes = 0
        # Called after entries were admitted (the core wakes an idle chain with it).
        self.on_added: Callable[[], None] | None = None

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def total_bytes(self) -> int:
        """Total bytes of pending entries."""
        return self._bytes

    def __contains__(self, leaf: object) -> bool:
        return leaf in self._entries

    def add(self, entries: Sequence[bytes]) -> list[bytes]:
        """Admit ``entries``; return their leaf hashes (duplicates are accepted once).

        Raises :class:`InvalidMessageError` for an empty or oversized entry and
        :class:`MempoolFullError` if the new entries do not all fit.
        """
        leaves: list[bytes] = []
        fresh: dict[bytes, bytes] = {}
        for entry in entries:
            if not 0 < len(entry) <= self.config.max_entry_bytes:
                raise InvalidMessageError(
                    f"entry of {len(entry)} bytes; allowed 1..{self.config.max_entry_bytes}"
                )
            leaf = leaf_hash(entry)
            leaves.append(leaf)
            if leaf not in self._entries:
                fresh[leaf] = entry
        added = sum(len(e) for e in fresh.values())
        if (
            len(self._entries) + len(fresh) > self.config.max_entries
            or self._bytes + added > self.config.max_bytes
        ):
            raise MempoolFullError(
                f"mempool holds {len(self._entries)} entries / {self._bytes} bytes; retry later"
            )
        self._entries.update(fresh)
        self._bytes += added
        if fresh and self.on_added is not None:
            self.on_added()
        return leaves

    def batch(self, exclude: Collection[bytes] = ()) -> tuple[bytes, ...]:
        """Oldest entries up to the batch bounds, skipping leaf hashes in ``exclude``
        (entries already in uncommitted ancestor blocks)."""
        return self.take(exclude)[0]

    def take(self, exclude: Collection[bytes] = ()) -> tuple[tuple[bytes, ...], tuple[bytes, ...]]:
        """Like :meth:`batch`, with the entries' leaf hashes: ``(entries, leaves)``."""
        out: list[bytes] = []
        leaves: list[bytes] = []
        size = 0
        for leaf, entry in self._entries.items():
            if len(out) >= self.config.batch_entries:
                break
            if leaf in exclude:
                continue
            if size + len(entry) > self.config.batch_bytes:
                break
            out.append(entry)
            leaves.append(leaf)
            size += len(entry)
        return tuple(out), tuple(leaves)

    def ready(self, exclude: Collection[bytes] = ()) -> bool:
        """Whether a full batch is waiting (so the leader need not wait for the delay)."""
        return len(self._entries) - len(exclude) >= self.config.batch_entries

    def remove(self, leaves: Iterable[bytes]) -> None:
        """Forget committed entries."""
        for leaf in leaves:
            entry = self._entries.pop(leaf, None)
            if entry is not None:
                self._bytes -= len(entry)
