"""Rendezvous (highest-random-weight) placement of a document's fragments.

Every node of the pool gets a score for a document: the SHA-256 of
``utf8(node name) || 0x00 || utf8(doc_id)`` read as a big-endian integer.
Nodes sorted by decreasing score (ties by name) form the document's HRW
order. The placement takes nodes from that order, skipping a node whose zone
already holds ``max_per_zone`` of the chosen ones; if the pool cannot satisfy
the zone rule, the skipped nodes fill the remaining slots in HRW order (best
effort, still distinct nodes). Fragment i of every segment goes to node i of
the placement. Adding a node to the pool only changes the placements in which
the new node ranks high enough, so few documents move.

Pure functions: no I/O, no globals.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Mapping, Sequence

from storage.errors import ConfigError


def score(node_name: str, doc_id: str) -> int:
    """The rendezvous weight of ``node_name`` for ``doc_id``."""
    digest = hashlib.sha256(node_name.encode() + b"\x00" + doc_id.encode()).digest()
    return int.from_bytes(digest, "big")


def hrw_order(doc_id: str, names: Sequence[str]) -> list[str]:
    """Node names sorted by decreasing rendezvous weight for ``doc_id`` (ties by name)."""
    return sorted(names, key=lambda name: (-score(name, doc_id), name))


def _take(
    order: Sequence[str],
    zones: Mapping[str, str],
    count: int,
    max_per_zone: int,
    already: Sequence[str],
) -> list[str]:
    """Pick ``count`` names from ``order`` (not in ``already``), zone rule first."""
    per_zone = Counter(zones[n] for n in already)
    chosen: list[str] = []
    skipped: list[str] = []
    for name in order:
        if len(chosen) == count:
            break
        if name in already:
            continue
        if per_zone[zones[name]] < max_per_zone:
            chosen.append(name)
            per_zone[zones[name]] += 1
        else:
            skipped.append(name)
    # Best effort: the pool cannot honour the zone rule, so use skipped nodes in HRW order.
    chosen.extend(skipped[: count - len(chosen)])
    return chosen


def place(doc_id: str, zones: Mapping[str, str], count: int, max_per_zone: int) -> tuple[str, ...]:
    """Choose ``count`` distinct nodes for ``doc_id``.

    ``zones`` maps every node name of the pool to its zone. Raises ConfigError
    if the pool has fewer than ``count`` nodes or ``max_per_zone`` < 1.
    """
    if max_per_zone < 1:
        raise ConfigError("max_per_zone must be at least 1")
    if len(zones) < count:
        raise ConfigError(f"placement needs {count} distinct nodes, the pool has {len(zones)}")
    return tuple(_take(hrw_order(doc_id, list(zones)), zones, count, max_per_zone, ()))


def replacement(
    doc_id: str,
    zones: Mapping[str, str],
    keep: Sequence[str],
    max_per_zone: int,
    exclude: Sequence[str] = (),
) -> str | None:
    """The next node down the HRW order to replace a lost one.

    ``keep`` are the nodes that stay in the placement; ``exclude`` are nodes
    that must not be chosen (the lost node, other unhealthy ones). The zone
    rule is honoured against ``keep`` when possible. Returns None if no
    candidate is left.
    """
    candidates = [n for n in hrw_order(doc_id, list(zones)) if n not in exclude]
    picked = _take(candidates, zones, 1, max_per_zone, keep)
    return picked[0] if picked else None
