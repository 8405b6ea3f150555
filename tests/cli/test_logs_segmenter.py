"""The segmenter against its rules, on random line streams (seeded) and edge cases."""

from __future__ import annotations

import random

import pytest

from cli.logs.segmenter import Segmenter


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("seed", range(20))
def test_segments_are_the_input_cut_at_line_ends(seed: int) -> None:
    rng = random.Random(seed)
    size = rng.choice([16, 64, 300, 4096])
    seg = Segmenter(size, 10.0, max_line_bytes=size * 8, clock=Clock())
    data = b"".join(b"x" * rng.randint(0, size * 2) + b"\n" for _ in range(200))
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        n = rng.randint(1, size * 3)
        out += seg.feed(data[pos : pos + n])
        pos += n
    out += seg.flush()
    assert b"".join(out) == data
    for s in out:
        assert s.endswith(b"\n")
        # Within the size, or a single (long) line.
        assert len(s) <= size or s.count(b"\n") == 1


def test_age_cut_takes_complete_lines_only() -> None:
    clock = Clock()
    seg = Segmenter(1024, 5.0, clock=clock)
    assert seg.feed(b"one\ntw") == []
    clock.t = 4.9
    assert seg.due() == []
    clock.t = 5.0
    assert seg.due() == [b"one\n"]
    assert seg.buffered == 2 and seg.complete() == []
    assert seg.feed(b"o\n") == [] and seg.complete() == [b"two\n"]


def test_an_endless_line_is_cut_at_the_line_limit() -> None:
    seg = Segmenter(8, 10.0, max_line_bytes=32, clock=Clock())
    out = seg.feed(b"y" * 70)
    assert out == [b"y" * 32, b"y" * 32] and seg.flush() == [b"y" * 6]
