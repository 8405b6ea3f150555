"""The embedded default: n validators in one process over an in-memory transport.

Each validator has its own key, its own persisted :class:`~chain.log.MerkleLog` and
SQLite consensus store under ``data_dir``; they talk through
:class:`~chain.consensus.transport.InMemoryNetwork` on the running event loop. The first
start generates the keys and the trust file; later starts reuse them and recover the
chain from disk. :class:`EmbeddedChain` offers the same operations as the HTTP
:class:`~chain.node.client.LedgerClient`.

Layout::

    <data_dir>/trust.json            the genesis (give it to verifiers)
    <data_dir>/keys/<name>.key       private keys (0600)
    <data_dir>/<name>/log/           the validator's Merkle log
    <data_dir>/<name>/consensus.sqlite
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chain.consensus.committee import Committee
from chain.consensus.core import Core, CoreConfig
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.messages import Message
from chain.consensus.sqlite_store import SqliteStore
from chain.consensus.transport import InMemoryNetwork
from chain.errors import ChainError
from chain.keys import Signer
from chain.log import MerkleLog
from chain.node.clock import AsyncioClock
from chain.node.deferred_ledger import DeferredLedger
from chain.node.results import (
    CommitInfo,
    CommitTimeoutError,
    ConsistencyProof,
    InclusionProof,
    NotFoundError,
    SubmitResult,
)
from chain.node.service import LedgerService
from chain.node.wire import take_block_bytes
from chain.trust import TrustFile, Validator, make_genesis

logger = logging.getLogger(__name__)

TRUST_FILE = "trust.json"

# How long the leader of a view waits for entries before proposing what it has (unless a
# full batch is waiting); CoreConfig's default of 50 ms suits validators on a network. In
# one process a view costs a few milliseconds (one fsync per validator, the signatures
# verified once), so a short wait keeps blocks cheap enough and commits in about 2.5
# views: 10 ms gave the best throughput and receipt latency under the service benchmark
# (docs/validator-node.md); 0 commits faster still but spends a core on empty-ish blocks.
EMBEDDED_BATCH_DELAY_MS = 10


@dataclass
class _Replica:
    name: str
    core: Core
    log: DeferredLedger
    store: SqliteStore
    clock: AsyncioClock


@dataclass
class EmbeddedChain:
    """n validators in this process; use :func:`start_embedded`."""

    data_dir: Path
    trust: TrustFile
    service: LedgerService
    replicas: list[_Replica] = field(default_factory=list)
    network: InMemoryNetwork | None = None
    _cores: dict[str, Core] = field(default_factory=dict)
    _writer: ThreadPoolExecutor | None = None
    _stopped: bool = False

    @property
    def trust_path(self) -> Path:
        """Where the trust file is (what verifiers need)."""
        return self.data_dir / TRUST_FILE

    async def submit(self, entries: Sequence[bytes]) -> SubmitResult:
        """Admit a batch; raises ``MempoolFullError`` (busy), ``EntryError``,
        ``BatchTooLargeError``."""
        return await self.service.submit(entries)

    async def wait_committed(self, entry_hash: bytes, timeout: float = 30.0) -> CommitInfo:
        """Wait until the entry is committed; raises :class:`CommitTimeoutError`."""
        info = await self.service.wait_committed(entry_hash, timeout)
        if info is None:
            raise CommitTimeoutError(f"entry {entry_hash.hex()} not committed in {timeout}s")
        return info

    async def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint note, or None before the first one."""
        return self.service.latest_checkpoint()

    async def checkpoint(self, tree_size: int, timeout: float = 0.0) -> str:
        """The committed checkpoint of exactly ``tree_size`` (waiting up to ``timeout`` s
        for it); raises :class:`NotFoundError`."""
        note = self.service.checkpoint(tree_size)
        if note is None and timeout > 0:
            await self.service.wait_checkpoint(tree_size, timeout)
            note = self.service.checkpoint(tree_size)
        if note is None:
            raise NotFoundError(f"no committed checkpoint of size {tree_size}")
        return note

    async def checkpoint_covering(self, tree_size: int, timeout: float = 0.0) -> str:
        """The smallest committed checkpoint of size >= ``tree_size`` (waiting up to
        ``timeout`` s); raises :class:`NotFoundError`."""
        note = await self.service.wait_checkpoint(tree_size, timeout)
        if note is None:
            raise NotFoundError(f"no committed checkpoint of size {tree_size} or more")
        return note

    async def inclusion_proof(
        self, tree_size: int, *, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof by leaf index or entry hash in the tree of ``tree_size``."""
        return self.service.inclusion_proof(
            tree_size=tree_size, leaf_index=leaf_index, entry_hash=entry_hash
        )

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two tree sizes."""
        return self.service.consistency_proof(old_size, new_size)

    async def block(self, height: int) -> dict[str, Any]:
        """The committed block at ``height`` as JSON."""
        return self.service.block(height)

    async def status(self) -> dict[str, Any]:
        """Height, view, tree size and latest checkpoint (of the first validator)."""
        status = self.service.status()
        status["validators"] = [r.name for r in self.replicas]
        return status

    async def stop(self) -> None:
        """Stop all validators and close their files (idempotent)."""
        if self._stopped:
            return
        self._stopped = True
        for r in self.replicas:
            r.clock.stop()
            if self.network is not None:
                self.network.unregister(r.name)
        self._cores.clear()
        # Let already scheduled callbacks find their node unregistered before closing.
        await asyncio.sleep(0)
        self.service.close()
        for r in self.replicas:
            r.log.close()
            r.store.close()
        if self._writer is not None:
            self._writer.shutdown()

    async def close(self) -> None:
        """Alias of :meth:`stop`."""
        await self.stop()


def _load_or_create_identity(
    data_dir: Path, n: int, chain_id: str
) -> tuple[TrustFile, list[Signer]]:
    trust_path = data_dir / TRUST_FILE
    keys_dir = data_dir / "keys"
    if trust_path.exists():
        trust = TrustFile.load(trust_path)
        signers = [Signer.load(keys_dir / f"{v.name}.key") for v in trust.validators]
        for v, s in zip(trust.validators, signers, strict=True):
            if s.public_key != v.public_key:
                raise ChainError(f"{keys_dir / (v.name + '.key')}: key does not match trust file")
        return trust, signers
    keys_dir.mkdir(parents=True, exist_ok=True)
    signers = [Signer.generate(f"embedded-v{i}") for i in range(n)]
    for s in signers:
        s.save(keys_dir / f"{s.name}.key", overwrite=False)
    trust = make_genesis(chain_id, [Validator(s.name, s.public_key) for s in signers])
    trust.save(trust_path)
    return trust, signers


async def start_embedded(
    data_dir: Path,
    n: int = 4,
    chain_id: str = "notary.embedded",
    *,
    core_config: CoreConfig | None = None,
    mempool_config: MempoolConfig | None = None,
) -> EmbeddedChain:
    """Start ``n`` validators (n = 3f+1) in this process on the running loop.

    On first start, keys and ``trust.json`` are created under ``data_dir``; afterwards
    they are reused (``n`` and ``chain_id`` are then taken from the trust file) and every
    validator recovers its log and consensus state from disk.
    """
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    trust, signers = _load_or_create_identity(data_dir, n, chain_id)
    committee = Committee(trust)
    loop = asyncio.get_running_loop()
    network = InMemoryNetwork(loop.call_soon)
    replicas: list[_Replica] = []
    cores: dict[str, Core] = {}

    def handler_for(name: str) -> Any:
        def handle(sender: str, message: Message) -> None:
            core = cores.get(name)
            if core is not None:
                core.handle(sender, message)

        return handle

    def on_error(e: BaseException) -> None:
        logger.critical("embedded chain: %s", e, exc_info=e)

    mp_config = mempool_config or MempoolConfig()
    if core_config is None:
        core_config = CoreConfig(batch_delay_ms=EMBEDDED_BATCH_DELAY_MS)
    # One worker thread writes the validators' Merkle logs (each has one write at a time).
    writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merkle-log")
    try:
        for signer in signers:
            base = data_dir / signer.name
            store = SqliteStore.open(base, block_bytes=take_block_bytes)
            # The writer thread fsyncs the committed markers before the entries they cover
            # (instead of the event loop, once per block and validator).
            try:
                merkle_log = MerkleLog.open(base / "log")
            except BaseException:
                store.close()
                raise
            log = DeferredLedger(
                merkle_log,
                loop.call_soon_threadsafe,
                on_error=on_error,
                executor=writer,
                before_write=store.commit_barrier(),
            )
            transport = network.register(signer.name, handler_for(signer.name))
            clock = AsyncioClock(loop, on_error=on_error)
            core = Core(
                name=signer.name,
                committee=committee,
                signer=signer,
                transport=transport,
                clock=clock,
                block_store=store,
                safety_store=store,
                ledger=log,
                mempool=Mempool(mp_config),
                config=core_config,
            )
            cores[signer.name] = core
            replicas.append(_Replica(signer.name, core, log, store, clock))
    except BaseException:
        for r in replicas:
            r.log.close()
            r.store.close()
        writer.shutdown()
        raise
    service = LedgerService(
        [r.core for r in replicas],
        replicas[0].store,
        role="embedded",
        committed_db=data_dir / replicas[0].name / "log" / "log.sqlite",
    )
    replicas[0].store.on_checkpoint = lambda _size: service.notify()
    for r in replicas:
        r.core.start()
    return EmbeddedChain(data_dir, trust, service, replicas, network, cores, writer)


if TYPE_CHECKING:  # both implementations must satisfy the protocol the service uses
    from chain.node.client import LedgerClient, LedgerClientProtocol

    _EMBEDDED: type[LedgerClientProtocol] = EmbeddedChain
    _HTTP: type[LedgerClientProtocol] = LedgerClient
