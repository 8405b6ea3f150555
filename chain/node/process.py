"""One validator or observer process: Merkle log + SQLite consensus store under its data
directory, its key, the peer transport and the HTTP server; graceful shutdown on
SIGTERM/SIGINT.

Layout of ``data_dir``: ``log/`` (the :class:`~chain.log.MerkleLog`) and
``consensus.sqlite`` (:class:`~chain.consensus.sqlite_store.SqliteStore`).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import ssl
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from aiohttp import web

from chain.consensus.blocks import Limits as BlockLimits
from chain.consensus.committee import Committee
from chain.consensus.core import Core, CoreConfig
from chain.consensus.errors import SafetyViolationError
from chain.consensus.mempool import Mempool, MempoolConfig
from chain.consensus.messages import Message
from chain.consensus.pacemaker import PacemakerConfig
from chain.consensus.sqlite_store import SqliteStore
from chain.keys import Signer
from chain.log import MerkleLog
from chain.node.clock import AsyncioClock
from chain.node.config import ConfigError, NodeConfig, load_config
from chain.node.deferred_ledger import DeferredLedger
from chain.node.eventloop import run as run_loop
from chain.node.peer_transport import HttpTransport
from chain.node.server import make_app
from chain.node.service import LedgerService
from chain.node.wire import encode_entries, take_block_bytes
from chain.trust import TrustFile

logger = logging.getLogger(__name__)

# How long a submission waits for f+1 other validators to take a copy before it is
# refused as busy (the entries stay pending here; a retry replicates them again).
REPLICATE_TIMEOUT_S = 5.0


def server_ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    """The TLS context serving peers and clients, or None for plain HTTP."""
    if config.tls.cert is None or config.tls.key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(config.tls.cert, config.tls.key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"setting 'tls.cert'/'tls.key': cannot load: {e}") from None
    return ctx


def client_ssl_context(ca: Path | None) -> ssl.SSLContext | None:
    """The TLS context for connecting to peers: verifies against ``ca`` (None: the system
    trust store is used for https:// peers)."""
    if ca is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca))
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"setting 'tls.ca': cannot load {ca}: {e}") from None


def block_limits(config: NodeConfig) -> BlockLimits:
    """The block limits every validator of the chain must share."""
    c = config.consensus
    return BlockLimits(
        max_entries=max(10_000, c.batch_entries), max_clock_skew_ms=c.max_clock_skew_ms
    )


class Node:
    """A running validator or observer; :meth:`start`, then :meth:`stop`."""

    def __init__(self, config: NodeConfig) -> None:
        """Prepare (nothing is opened until :meth:`start`)."""
        self.config = config
        self.halted: str | None = None
        self.unexpected = 0
        self.port = config.port
        self._runner: web.AppRunner | None = None
        self._transport: HttpTransport | None = None
        self._clock: AsyncioClock | None = None
        self._log: DeferredLedger | None = None
        self._store: SqliteStore | None = None
        self._writer: ThreadPoolExecutor | None = None
        self.core: Core | None = None
        self.service: LedgerService | None = None

    async def start(self) -> None:
        """Open the stores, recover, listen and join the chain."""
        cfg = self.config
        trust = TrustFile.load(cfg.trust_file)
        signer: Signer | None = None
        if cfg.is_validator:
            assert cfg.key_file is not None
            signer = Signer.load(cfg.key_file)
            if signer.name != cfg.name:
                raise ConfigError(
                    f"setting 'key_file': key is for {signer.name!r}, node is {cfg.name!r}"
                )
            member = trust.validator(cfg.name)
            if member is None or member.public_key != signer.public_key:
                raise ConfigError(
                    f"setting 'name': {cfg.name!r} with this key is not a validator of "
                    f"{trust.chain_id} in {cfg.trust_file}"
                )
        peers = {v.name: v.address for v in trust.validators if v.address}
        peers.update(cfg.peers)
        peers.pop(cfg.name, None)
        loop = asyncio.get_running_loop()
        self._clock = AsyncioClock(loop, on_error=self._on_timer_error)
        self._transport = HttpTransport(
            cfg.name,
            trust.chain_id,
            peers,
            ssl_context=client_ssl_context(cfg.tls.ca),
            queue_size=cfg.limits.peer_queue,
        )
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        # One worker thread writes the Merkle log, so its fsyncs never stall the loop.
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="merkle-log")
        self._store = SqliteStore.open(cfg.data_dir, block_bytes=take_block_bytes)
        # The writer fsyncs the committed markers before the entries they cover.
        self._log = DeferredLedger(
            MerkleLog.open(cfg.data_dir / "log"),
            loop.call_soon_threadsafe,
            on_error=self._halt,
            executor=self._writer,
            before_write=self._store.commit_barrier(),
        )
        limits = block_limits(cfg)
        c = cfg.consensus
        mempool = None
        if signer is not None:
            mempool = Mempool(
                MempoolConfig(
                    max_entries=cfg.limits.mempool_entries,
                    max_bytes=cfg.limits.mempool_bytes,
                    batch_entries=c.batch_entries,
                    batch_bytes=limits.max_block_bytes // 2,
                    batch_delay_ms=c.batch_delay_ms,
                )
            )
        self.core = Core(
            name=cfg.name,
            committee=Committee(trust),
            signer=signer,
            transport=self._transport,
            clock=self._clock,
            block_store=self._store,
            safety_store=self._store if signer is not None else None,
            ledger=self._log,
            mempool=mempool,
            config=CoreConfig(
                limits=limits,
                pacemaker=PacemakerConfig(base_ms=c.view_timeout_ms),
                batch_delay_ms=c.batch_delay_ms,
                heartbeat_ms=c.heartbeat_ms,
            ),
        )
        self.service = LedgerService(
            [self.core],
            self._store,
            max_batch_entries=cfg.limits.max_batch_entries,
            peers_up=self._transport.peers_up,
            committed_db=cfg.data_dir / "log" / "log.sqlite",
            replicate=self._replicate,
            replicas_needed=min(trust.f + 1, len(trust.validators) - 1) if signer else 0,
        )
        service = self.service
        self._store.on_checkpoint = lambda _size: service.notify()
        app = make_app(self.service, limits=cfg.limits, block_limits=limits, deliver=self._deliver)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, cfg.host, cfg.port, ssl_context=server_ssl_context(cfg), backlog=512
        )
        await site.start()
        server = site._server  # the bound port when 0 was asked for
        if server is not None and server.sockets:  # type: ignore[attr-defined]
            self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self._transport.start()
        self.core.start()
        logger.info(
            "%s (%s) of chain %s listening on %s:%d; height %d, tree size %d",
            cfg.name,
            cfg.role,
            trust.chain_id,
            cfg.host,
            self.port,
            self.core.head.height,
            self._log.size,
        )

    async def _replicate(self, entries: Sequence[bytes]) -> int:
        # f+1 other validators must hold a copy before the submission is acknowledged
        # (LedgerService.submit): at least one of them is honest. They are taken in the
        # order in which they lead next, so the entries are proposed soon; a validator
        # that does not answer is replaced by the next one.
        core, transport = self.core, self._transport
        if core is None or transport is None or not entries:
            return 0
        committee = core.committee
        order: list[str] = []
        for v in range(core.view, core.view + committee.size):
            name = committee.name(committee.leader(v))
            if name != self.config.name and name not in order:
                order.append(name)
        order += [n for n in committee.names() if n != self.config.name and n not in order]
        return await transport.replicate(
            encode_entries(entries), order, committee.f + 1, REPLICATE_TIMEOUT_S
        )

    def _deliver(self, sender: str, message: Message) -> None:
        if self.halted is not None or self.core is None:
            return
        try:
            self.core.handle(sender, message)
        except SafetyViolationError as e:
            self._halt(e)
        except Exception:
            # A bug triggered by one message must not take the validator down with it.
            self.unexpected += 1
            logger.exception(
                "%s: unexpected error handling a message from %r", self.config.name, sender
            )

    def _on_timer_error(self, e: BaseException) -> None:
        if isinstance(e, SafetyViolationError):
            self._halt(e)
        else:
            logger.exception("%s: timer failed", self.config.name, exc_info=e)

    def _halt(self, e: BaseException) -> None:
        # Two conflicting commits (more than f faulty validators, or a bug) or a log that
        # can no longer be written: stop signing anything, keep serving what is stored,
        # and make it loud. A restart recovers from the store once the cause is fixed.
        self.halted = str(e)
        kind = "SAFETY VIOLATION" if isinstance(e, SafetyViolationError) else "LEDGER FAILURE"
        logger.critical("%s: %s, consensus halted: %s", self.config.name, kind, e)
        if self._clock is not None:
            self._clock.stop()

    async def stop(self) -> None:
        """Stop consensus, close connections and files (idempotent)."""
        if self._clock is not None:
            self._clock.stop()
        if self._transport is not None:
            await self._transport.close()
            self._transport = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.service is not None:
            self.service.close()
        if self._log is not None:  # its last write runs the store's commit barrier
            self._log.close()
            self._log = None
        if self._store is not None:
            self._store.close()
            self._store = None
        if self._writer is not None:
            self._writer.shutdown()
            self._writer = None


async def serve(config: NodeConfig) -> None:
    """Run a node until SIGTERM or SIGINT, then shut down gracefully."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    node = Node(config)
    try:
        await node.start()
        await stop.wait()
        logger.info("%s: shutting down", config.name)
    finally:
        await node.stop()


def run(config_path: Path) -> None:
    """Load the config at ``config_path`` and run the node (blocks until stopped)."""
    run_loop(serve(load_config(config_path)))
