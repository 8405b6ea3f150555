"""Rendezvous placement: distinct nodes, the zone rule, stability, replacements."""

from __future__ import annotations

import hashlib
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.errors import ConfigError
from storage.placement import hrw_order, place, replacement, score


def pool(n: int, zones: int) -> dict[str, str]:
    return {f"node-{i}": f"zone-{i % zones}" for i in range(n)}


def test_score_is_sha256_of_name_nul_doc_id() -> None:
    want = int.from_bytes(hashlib.sha256(b"node-1\x00doc").digest(), "big")
    assert score("node-1", "doc") == want
    order = hrw_order("doc", ["a", "b", "c"])
    assert [score(n, "doc") for n in order] == sorted(
        (score(n, "doc") for n in "abc"), reverse=True
    )


@settings(max_examples=200, deadline=None)
@given(
    n_nodes=st.integers(1, 24),
    n_zones=st.integers(1, 8),
    k=st.integers(1, 8),
    m=st.integers(1, 8),
    doc=st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True),
)
def test_distinct_nodes_and_zone_rule_when_pool_allows(
    n_nodes: int, n_zones: int, k: int, m: int, doc: str
) -> None:
    zones = pool(n_nodes, n_zones)
    if n_nodes < k + m:
        with pytest.raises(ConfigError):
            place(doc, zones, k + m, m)
        return
    chosen = place(doc, zones, k + m, m)
    assert len(chosen) == k + m == len(set(chosen))
    assert set(chosen) <= set(zones)
    per_zone = Counter(zones[n] for n in chosen)
    capacity = sum(min(c, m) for c in Counter(zones.values()).values())
    if capacity >= k + m:
        assert max(per_zone.values()) <= m
    assert place(doc, zones, k + m, m) == chosen  # deterministic


def test_three_zones_of_two_nodes_get_two_fragments_each() -> None:
    zones = pool(6, 3)
    for i in range(50):
        chosen = place(f"doc{i}", zones, 6, 2)
        assert Counter(zones[n] for n in chosen) == {"zone-0": 2, "zone-1": 2, "zone-2": 2}


def test_adding_a_node_moves_few_placements() -> None:
    before = pool(10, 1)
    after = {**before, "node-new": "zone-0"}
    docs = [f"doc{i}" for i in range(2000)]
    moved = 0
    for d in docs:
        a, b = set(place(d, before, 6, 6)), set(place(d, after, 6, 6))
        if a != b:
            moved += 1
            assert len(a - b) == 1 and b - a == {"node-new"}
    # The new node enters the top 6 of 11 for about 6/11 of documents; nothing else moves.
    assert 0.45 < moved / len(docs) < 0.65


def test_replacement_continues_down_the_hrw_order_and_keeps_the_zone_rule() -> None:
    zones = pool(9, 3)
    chosen = place("docx", zones, 6, 2)
    lost = chosen[0]
    keep = chosen[1:]
    new = replacement("docx", zones, keep, 2, exclude=[lost])
    assert new is not None and new not in chosen
    assert zones[new] == zones[lost]  # only the lost node's zone has room left
    spare = [
        n for n in hrw_order("docx", list(zones)) if n not in chosen and zones[n] == zones[lost]
    ]
    assert new == spare[0]
    everything = list(zones)
    assert replacement("docx", zones, keep, 2, exclude=everything) is None


def test_bad_requests_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        place("d", pool(6, 1), 6, 0)
    with pytest.raises(ConfigError):
        place("d", pool(5, 1), 6, 2)
