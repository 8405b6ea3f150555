"""Running the chain: validator and observer processes, their HTTP APIs, and clients.

::

    config.py          validator/observer config (TOML) -> NodeConfig; ConfigError
    clock.py           the asyncio Clock of a real node
    wire.py            consensus messages <-> bytes (the peer wire format)
    sqlite_store.py    durable SafetyStore + BlockStore in SQLite
    deferred_ledger.py the Merkle log append moved off the vote's critical path
    results.py         entry hash, result types and client-facing errors
    service.py         LedgerService: client operations over one Core
    peer_transport.py  aiohttp Transport: bounded per-peer queues, reconnect with backoff
    problems.py        RFC 9457 problem details with stable codes
    server.py          aiohttp app: peer endpoint + client API
    process.py         one validator/observer process (graceful shutdown)
    inprocess.py       EmbeddedChain: n validators in one process (the embedded default)
    client.py          LedgerClient (HTTP) and the LedgerClientProtocol both implement
"""
