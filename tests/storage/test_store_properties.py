"""Property: for any (k, m), any document and any damage on disk of up to m fragments per
segment, the store reads back the same bytes; with more, it refuses with the right segments."""

from __future__ import annotations

import asyncio
import random
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import DocumentStore, UnrecoverableError
from storage.nodes import LocalFolderNode

from .conftest import flip_byte, truncate

PAIRS = [(k, m) for k in range(1, 16) for m in range(1, k + 1) if k + m <= 16]
SEG = 512


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pair=st.sampled_from(PAIRS),
    size=st.integers(0, 4 * SEG),
    seed=st.integers(0, 2**32 - 1),
    too_many=st.booleans(),
)
def test_any_codec_any_damage_up_to_m_reads_back(
    pair: tuple[int, int], size: int, seed: int, too_many: bool
) -> None:
    asyncio.run(_scenario(pair, size, seed, too_many))


async def _scenario(pair: tuple[int, int], size: int, seed: int, too_many: bool) -> None:
    k, m = pair
    rnd = random.Random(seed)
    base = Path(tempfile.mkdtemp(prefix="store-prop-"))
    try:
        nodes = [LocalFolderNode(f"n{i}", base / f"n{i}", zone=f"z{i % 4}") for i in range(k + m)]
        store = DocumentStore(nodes, k=k, m=m, segment_size=SEG)
        data = rnd.randbytes(size)
        manifest = await store.put(data)
        broken: set[int] = set()
        for seg in manifest.segments:
            overload = too_many and rnd.random() < 0.5
            count = m + 1 if overload else rnd.randint(0, m)
            if overload:
                broken.add(seg.index)
            for entry in rnd.sample(seg.fragments, count):
                path = base / entry.node / entry.key
                how = rnd.choice(["delete", "flip", "truncate"])
                if how == "delete":
                    path.unlink()
                elif how == "flip":
                    flip_byte(path, rnd)
                else:
                    truncate(path, rnd)
        reader = DocumentStore(
            [LocalFolderNode(n.name, n.root, zone=n.zone) for n in nodes],
            k=k,
            m=m,
            segment_size=SEG,
            read_ahead=len(manifest.segments),  # every failed segment lands in the error
        )
        if not broken:
            assert await reader.read_bytes(manifest) == data
            return
        try:
            await reader.read_bytes(manifest)
        except UnrecoverableError as e:
            assert {s.segment for s in e.segments} == broken
            for s in e.segments:
                assert len(s.faults) == m + 1
        else:
            raise AssertionError("a segment with m + 1 bad fragments was read")
        healthy = [s for s in manifest.segments if s.index not in broken]
        for s in healthy:  # the undamaged segments still read through range reads
            lo = s.index * SEG
            got = b"".join([c async for c in reader.read(manifest, lo, lo + s.size)])
            assert got == data[lo : lo + s.size]
    finally:
        shutil.rmtree(base)
