"""Manifest copies on the nodes: writing them, finding them, choosing the current one.

Every node of a document's placement holds ``manifest/<doc_id>.json``: the
manifest in a self-digest envelope. The current manifest of a document is
the valid copy with the highest revision found on any node of the pool;
damaged copies (digest mismatch, unparsable, wrong doc_id) are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from storage.errors import BlobNotFoundError, ManifestError, NodeError
from storage.manifest import (
    MANIFEST_PREFIX,
    Manifest,
    decode_envelope,
    doc_id_from_manifest_key,
    encode_envelope,
    manifest_key,
)
from storage.nodes.base import BlobStat
from storage.pool import NodePool

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Copies:
    """Every node's copy of one document's manifest, or why it has no valid one."""

    doc_id: str
    valid: dict[str, Manifest]
    faults: dict[str, str]

    def current(self) -> Manifest:
        """The valid copy with the highest revision; ManifestError if there is none."""
        if not self.valid:
            why = "; ".join(f"{n}: {f}" for n, f in sorted(self.faults.items())) or "no copies"
            raise ManifestError(f"no valid manifest copy of document {self.doc_id} ({why})")
        return max(self.valid.values(), key=lambda m: m.revision)


async def read_copies(pool: NodePool, doc_id: str, names: Iterable[str] | None = None) -> Copies:
    """Read the manifest copy of ``doc_id`` from each named node (default: all)."""
    key = manifest_key(doc_id)
    targets = list(pool.names if names is None else names)

    async def one(name: str) -> Manifest | str:
        try:
            manifest = decode_envelope(await pool.get(name, key))
        except BlobNotFoundError:
            return "missing"
        except (NodeError, ManifestError) as e:
            return str(e)
        if manifest.doc_id != doc_id:
            return f"copy names document {manifest.doc_id}"
        return manifest

    results = await asyncio.gather(*(one(n) for n in targets))
    valid = {n: r for n, r in zip(targets, results, strict=True) if isinstance(r, Manifest)}
    faults = {n: r for n, r in zip(targets, results, strict=True) if isinstance(r, str)}
    return Copies(doc_id=doc_id, valid=valid, faults=faults)


async def list_doc_ids(pool: NodePool) -> tuple[dict[str, set[str]], dict[str, NodeError]]:
    """Which nodes list a manifest for which doc_id, and the nodes that could not list."""
    names = pool.names
    results = await asyncio.gather(
        *(pool.list_keys(n, MANIFEST_PREFIX) for n in names), return_exceptions=True
    )
    holders: dict[str, set[str]] = {}
    errors: dict[str, NodeError] = {}
    for name, result in zip(names, results, strict=True):
        if isinstance(result, NodeError):
            errors[name] = result
            continue
        if isinstance(result, BaseException):
            raise result
        for key in result:
            doc_id = doc_id_from_manifest_key(key)
            if doc_id is not None:
                holders.setdefault(doc_id, set()).add(name)
    for name, err in errors.items():
        log.warning("node %s could not list manifests: %s", name, err)
    return holders, errors


async def is_torn(pool: NodePool, manifest: Manifest) -> bool:
    """True if ``manifest`` is what a one-round put interrupted by a crash leaves: written
    in one round with its fragments (``Manifest.one_round``), fewer than k of them present
    and every other one certainly absent (its node answered "no such blob"). Such a put
    was never acknowledged (docs/storage.md, "Torn puts"). A node that cannot answer makes
    the answer False: its fragment may be there."""
    if not manifest.one_round:
        return False
    fragments = manifest.segments[0].fragments
    results = await asyncio.gather(
        *(pool.stat(f.node, f.key) for f in fragments), return_exceptions=True
    )
    present = sum(1 for r in results if isinstance(r, BlobStat))
    absent = sum(1 for r in results if r is None)
    return present < manifest.codec.k and present + absent == len(fragments)


def copy_writes(manifest: Manifest, names: Sequence[str]) -> list[tuple[str, str, bytes]]:
    """The (node, key, envelope) writes of the manifest's copies on the named nodes."""
    blob = encode_envelope(manifest)
    key = manifest_key(manifest.doc_id)
    return [(n, key, blob) for n in names]


def copy_outcomes(
    names: Sequence[str], results: Sequence[BaseException | None]
) -> tuple[list[str], list[NodeError]]:
    """The nodes that took their copy and the failures of the others (``put_all``'s
    results for ``copy_writes``); an error that is no NodeError is raised."""
    ok: list[str] = []
    failed: list[NodeError] = []
    for name, result in zip(names, results, strict=True):
        if result is None:
            ok.append(name)
        elif isinstance(result, NodeError):
            failed.append(result)
        else:
            raise result
    return ok, failed


async def write_copies(
    pool: NodePool, manifest: Manifest, names: Sequence[str]
) -> tuple[list[str], list[NodeError]]:
    """Write the manifest envelope to each named node; return the successes and failures."""
    return copy_outcomes(names, await pool.put_all(copy_writes(manifest, names)))
