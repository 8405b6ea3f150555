"""Shared helpers for storage tests: folder nodes under a temporary directory."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from storage import DocumentStore, Manifest
from storage.manifest import FragmentEntry
from storage.nodes import LocalFolderNode


class Cluster:
    """N folder nodes under one directory, and stores over them."""

    def __init__(self, base: Path, count: int, zones: int) -> None:
        self.base = base
        self.count = count
        self.zones = zones
        self.nodes = self.open_nodes()

    def open_nodes(self, create: bool = True) -> list[LocalFolderNode]:
        return [
            LocalFolderNode(
                f"node{i}", self.base / f"node{i}", zone=f"zone{i % self.zones}", create=create
            )
            for i in range(self.count)
        ]

    def store(self, create: bool = True, **kwargs: object) -> DocumentStore:
        """A store over the nodes; ``create=False`` leaves removed node folders absent."""
        kwargs.setdefault("segment_size", 4096)
        return DocumentStore(self.open_nodes(create), **kwargs)  # type: ignore[arg-type]

    def root(self, node: str) -> Path:
        return self.base / node

    def path(self, entry: FragmentEntry) -> Path:
        return self.root(entry.node) / entry.key

    def files(self) -> list[Path]:
        return sorted(p for p in self.base.rglob("*") if p.is_file())


@pytest.fixture
def cluster(tmp_path: Path) -> Cluster:
    return Cluster(tmp_path / "data", 6, 3)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261121)


def flip_byte(path: Path, rnd: random.Random) -> None:
    """Flip one bit of the file on disk, in place."""
    data = bytearray(path.read_bytes())
    pos = rnd.randrange(len(data))
    data[pos] ^= 1 << rnd.randrange(8)
    with path.open("r+b") as f:
        f.seek(pos)
        f.write(bytes([data[pos]]))
        f.flush()
        os.fsync(f.fileno())


def truncate(path: Path, rnd: random.Random) -> None:
    size = path.stat().st_size
    os.truncate(path, rnd.randrange(size))


def fragment_nodes(manifest: Manifest) -> list[str]:
    """Node i of the placement (fragment i of every segment)."""
    return [f.node for f in manifest.segments[0].fragments] if manifest.segments else []
