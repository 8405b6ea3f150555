"""What the service's folder nodes hold, seen from outside (packed blobs included), so
tests can look for plaintext on disk and damage stored bytes for real."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.nodes import LocalFolderNode


@dataclass(frozen=True)
class StoredBlob:
    """One blob on one node: where its bytes are on disk."""

    node: str
    key: str
    path: Path
    offset: int
    size: int

    def read(self) -> bytes:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read(self.size)

    def flip_byte(self, at: int) -> None:
        """Flip one bit of byte ``at`` of the blob, in place on disk."""
        with self.path.open("r+b") as f:
            f.seek(self.offset + at)
            byte = f.read(1)[0]
            f.seek(self.offset + at)
            f.write(bytes([byte ^ 0x40]))


def stored_blobs(nodes_dir: Path, doc_id: str) -> list[StoredBlob]:
    """Every blob of ``doc_id`` (fragments and manifest copies) on the folder nodes under
    ``nodes_dir``, packed or as files, by node and key."""
    found: list[StoredBlob] = []
    for root in sorted(p for p in nodes_dir.iterdir() if p.is_dir()):
        node = LocalFolderNode(root.name, root, create=False, pack=True)
        keys = [k for k in node._pack.packed_keys() if doc_id in k] if node._pack else []
        for key in sorted(keys):
            located = node.blob_location(key)
            assert located is not None
            found.append(StoredBlob(root.name, key, *located))
        for p in sorted(root.rglob("*")):
            if p.is_file() and doc_id in str(p.relative_to(root)):
                key = str(p.relative_to(root))
                found.append(StoredBlob(root.name, key, p, 0, p.stat().st_size))
        if node._pack is not None:
            node._pack.close()
    return found


def node_keys(nodes_dir: Path) -> list[tuple[str, str]]:
    """(node, key) of every blob on the folder nodes under ``nodes_dir``, sorted."""
    return sorted((b.node, b.key) for b in stored_blobs(nodes_dir, "") if not b.key.startswith("#"))
