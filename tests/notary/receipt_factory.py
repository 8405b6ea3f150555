"""Builds real receipts without the service: a log of entries, a checkpoint signed by
validators from fixed seeds, and the inclusion proof. Used by tests and the vector generator."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from chain.checkpoint import Checkpoint, assemble_checkpoint, sign_checkpoint
from chain.keys import Signer
from chain.merkle import inclusion_proof, leaf_hash, root_hash
from chain.trust import TrustFile, Validator, make_genesis
from notary.entry import document_entry
from notary.receipt import Receipt

CHAIN_ID = "notary.test/chain-1"


def signers(n: int = 4, prefix: str = "validator") -> list[Signer]:
    return [
        Signer.from_seed(f"{prefix}-{i}", hashlib.sha256(f"{prefix}-{i}".encode()).digest())
        for i in range(n)
    ]


def trust_for(keys: Sequence[Signer], chain_id: str = CHAIN_ID) -> TrustFile:
    return make_genesis(
        chain_id,
        [
            Validator(s.name, s.public_key, f"http://127.0.0.1:{7000 + i}")
            for i, s in enumerate(keys)
        ],
    )


@dataclass(frozen=True)
class Fixture:
    document: bytes
    receipt: Receipt
    trust: TrustFile
    keys: tuple[Signer, ...]
    leaves: tuple[bytes, ...]  # all leaf hashes of the log


def build(
    document: bytes = b"Q3 filing, final\n",
    *,
    tree_size: int = 11,
    leaf_index: int = 6,
    sign_with: Sequence[int] = (0, 1, 2),
    chain_id: str = CHAIN_ID,
    entry_for: Callable[[bytes, bytes], bytes] = lambda s, d: document_entry(s, d).to_bytes(),
) -> Fixture:
    """A valid receipt for ``document`` at ``leaf_index`` of a log of ``tree_size`` entries."""
    keys = signers()
    trust = trust_for(keys, chain_id)
    salt = hashlib.sha256(b"salt" + document).digest()
    digest = hashlib.sha256(document).digest()
    entry = entry_for(salt, digest)
    entries = [
        document_entry(
            hashlib.sha256(b"s%d" % i).digest(), hashlib.sha256(b"d%d" % i).digest()
        ).to_bytes()
        for i in range(tree_size)
    ]
    entries[leaf_index] = entry
    leaves = [leaf_hash(e) for e in entries]
    cp = Checkpoint(chain_id, tree_size, root_hash(leaves))
    note = assemble_checkpoint(cp, [sign_checkpoint(cp, keys[i]) for i in sign_with])
    receipt = Receipt(
        chain_id=chain_id,
        document_sha256=digest,
        document_size=len(document),
        salt=salt,
        entry=entry,
        leaf_index=leaf_index,
        tree_size=tree_size,
        inclusion_proof=tuple(inclusion_proof(leaf_index, leaves)),
        checkpoint=note,
    )
    return Fixture(document, receipt, trust, tuple(keys), tuple(leaves))
