"""Assembling the service from its settings, and running it.

The embedded default (no configuration): six folder storage nodes under
``<data_dir>/nodes``, SQLite at ``<data_dir>/index.sqlite3``, four validators in one
child process (notary/ledger_process.py) under
``<data_dir>/chain`` (keys and trust file created on first start and reused afterwards),
the API on 127.0.0.1:8080. In production (``chain.mode = remote``) the validators run
as their own processes (``notary node run``) and the service reaches their client API at
the addresses of the trust file.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chain.errors import ChainError
from chain.node.client import LedgerClient
from chain.node.client import LedgerClientProtocol as Ledger
from chain.trust import TrustFile
from notary.anchoring import AnchorWorker
from notary.config import S3NodeSettings, Settings
from notary.errors import NotaryError
from notary.http.app import create_app
from notary.http.auth import bearer_tokens, open_access
from notary.http.documents import SERVICE, document_routes
from notary.http.sharing import sharing_routes
from notary.http.streams import STREAMS, stream_routes
from notary.http.verify import TRUST, verify_routes
from notary.index.db import create_engine, ensure_current
from notary.index.writer import IndexWriter
from notary.ledger_process import ProcessChain
from notary.sealed_io import Sealing, load_keyring
from notary.service import NotaryService
from notary.streams import StreamService
from notary.tokens import authenticate
from storage import DocumentStore
from storage.nodes import LocalFolderNode, StorageNode

log = logging.getLogger(__name__)

EMBEDDED_NODES = 6
# An upload still "storing" after this long was interrupted by a crash.
STALE_UPLOAD = timedelta(hours=1)


def storage_nodes(settings: Settings) -> list[StorageNode]:
    """The storage nodes the settings name (the embedded six folders by default)."""
    if not settings.storage.nodes:
        root = settings.data_dir / "nodes"
        return [
            LocalFolderNode(f"node-{i}", root / f"node-{i}", zone=f"zone-{i}", pack=True)
            for i in range(EMBEDDED_NODES)
        ]
    nodes: list[StorageNode] = []
    for n in settings.storage.nodes:
        if isinstance(n, S3NodeSettings):
            from storage.nodes.s3 import S3Node

            nodes.append(
                S3Node(
                    n.name,
                    endpoint_url=n.endpoint_url,
                    bucket=n.bucket,
                    access_key=n.access_key,
                    secret_key=n.secret_key,
                    region=n.region,
                    zone=n.zone,
                    prefix=n.prefix,
                    object_lock_days=n.object_lock_days,
                    verify_tls=n.verify_tls,
                    read_timeout=settings.storage.node_timeout,
                )
            )
        else:
            nodes.append(LocalFolderNode(n.name, n.path, zone=n.zone, pack=n.pack))
    return nodes


@dataclass
class Notary:
    """A running service's parts (for ``serve`` and for tests)."""

    app: web.Application
    service: NotaryService
    store: DocumentStore
    engine: AsyncEngine
    ledger: Ledger
    trust_path: Path
    worker: AnchorWorker

    async def close(self) -> None:
        """Stop anchoring, the ledger (or its client), storage and the database."""
        await self.worker.stop()
        await self.service.writer.close()  # let queued index writes land
        await self.ledger.close()
        await self.store.close()
        await self.engine.dispose()


async def connect_ledger(settings: Settings) -> tuple[Ledger, TrustFile, Path]:
    """The ledger: validators in this process, or a client of remote validators."""
    if settings.chain.mode == "embedded":
        # In a child process: the API's interpreter lock would otherwise pace consensus.
        chain = await ProcessChain.start(
            settings.data_dir / "chain",
            n=settings.chain.validators,
            chain_id=settings.chain.chain_id,
        )
        return chain, chain.trust, chain.trust_path
    path = settings.chain.trust_file
    assert path is not None  # the settings refuse remote mode without a trust file
    try:
        trust = TrustFile.load(path)
    except ChainError as e:
        raise NotaryError(f"invalid setting chain.trust_file: {e}") from None
    urls = [v.address for v in trust.validators if v.address]
    if not urls:
        raise NotaryError(f"invalid setting chain.trust_file: {path} lists no validator address")
    return LedgerClient(urls, ca=settings.chain.ca_file), trust, path


def check_exposure(settings: Settings) -> None:
    """Refuse to serve without authentication on anything but a loopback address."""
    if settings.auth.mode != "none":
        return
    host = settings.server.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise NotaryError(
            f'invalid setting auth.mode: "none" (every caller is admin) is only allowed on a '
            f'loopback server.host, not {host!r}; set auth.mode = "tokens"'
        )


def _authentication(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> Callable[..., Awaitable[web.StreamResponse]]:
    if settings.auth.mode == "tokens":
        return bearer_tokens(lambda token: authenticate(sessions, token))
    # The embedded default serves a loopback address only and has no accounts.
    return open_access()


async def build(settings: Settings) -> Notary:
    """Start every part the settings describe; the caller must ``close`` the result."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    # First, so that unusable master keys stop the start before anything else runs.
    sealing = Sealing(load_keyring(settings), record_size=settings.sealing.record_size)
    engine = create_engine(settings.database_url())
    try:
        await ensure_current(engine)
    except BaseException:
        await engine.dispose()
        raise
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    store = DocumentStore(
        storage_nodes(settings),
        k=settings.storage.k,
        m=settings.storage.m,
        segment_size=settings.storage.segment_size,
        node_timeout=settings.storage.node_timeout,
    )
    try:
        ledger, trust, trust_path = await connect_ledger(settings)
    except BaseException:
        await store.close()
        await engine.dispose()
        raise
    writer = IndexWriter(sessions)  # one group committer: all index writes share commits
    worker = AnchorWorker(ledger, sessions, writer=writer)
    service = NotaryService(
        store,
        sessions,
        worker,
        ledger,
        trust.chain_id,
        max_upload_bytes=settings.limits.max_upload_bytes,
        sealing=sealing,
        writer=writer,
    )
    await service.abandon_unfinished(STALE_UPLOAD)
    worker.start(await service.pending(), await service.pending_custody())

    async def storage_ready() -> str:
        # A stat of a key that never exists: any answer, even "no such blob", is a live node.
        answers = await store.pool.stat_all(store.pool.names, "health/probe")
        up = sum(1 for a in answers if not isinstance(a, BaseException))
        needed = store.k + store.m
        if up < needed:
            raise NotaryError(f"{up} of {len(answers)} storage nodes reachable, {needed} needed")
        return f"{up} of {len(answers)} storage nodes reachable"

    async def database_ready() -> str:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return "reachable"

    async def chain_ready() -> str:
        status = await ledger.status()
        return f"height {status.get('height')}, view {status.get('view')}"

    app = create_app(
        {"storage": storage_ready, "database": database_ready, "chain": chain_ready},
        extra_middlewares=[_authentication(settings, sessions)],
    )
    app[SERVICE] = service
    app[TRUST] = trust
    app.add_routes(document_routes())
    app.add_routes(sharing_routes())
    app.add_routes(verify_routes())
    app[STREAMS] = StreamService(service)
    app.add_routes(stream_routes())
    return Notary(app, service, store, engine, ledger, trust_path, worker)


def _ssl_context(settings: Settings) -> ssl.SSLContext | None:
    if settings.server.tls_cert is None or settings.server.tls_key is None:
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.server.tls_cert, settings.server.tls_key)
    return ctx


@contextlib.asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[tuple[Notary, str]]:
    """The service listening on its configured address; yields it and its base URL."""
    check_exposure(settings)
    notary = await build(settings)
    runner = web.AppRunner(notary.app, access_log=None)
    try:
        await runner.setup()
        tls = _ssl_context(settings)
        site = web.TCPSite(runner, settings.server.host, settings.server.port, ssl_context=tls)
        await site.start()
        host, port = runner.addresses[0][:2]
        scheme = "https" if tls else "http"
        yield notary, f"{scheme}://{host}:{port}"
    finally:
        await runner.cleanup()
        await notary.close()


async def serve(settings: Settings, announce: Callable[[str], None]) -> None:
    """Run until cancelled (SIGINT/SIGTERM), announcing the URL and the trust file."""
    async with running(settings) as (notary, url):
        # Everything built at start lives as long as the process: keep it out of the
        # cyclic collector's full passes, which otherwise rescan it under load.
        gc.freeze()
        announce(f"notary API listening on {url}")
        announce(f"trust file (for offline verification): {notary.trust_path.resolve()}")
        announce(f"data under {settings.data_dir.resolve()}; stop with Ctrl-C")
        await asyncio.Event().wait()
