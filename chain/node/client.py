"""Clients of the ledger: the :class:`LedgerClientProtocol` the notary service depends
on, and :class:`LedgerClient`, its implementation over the validators' HTTP API.
(:class:`~chain.node.inprocess.EmbeddedChain` implements the protocol in-process.)

The HTTP client talks to one validator at a time and fails over to the next on
connection errors, timeouts and 5xx answers; a ``busy`` answer (503, mempool full) is
retried with exponential backoff honouring ``Retry-After``. Problem details map back to
the chain errors: ``busy`` -> :class:`MempoolFullError`, ``invalid_entry`` ->
:class:`EntryError`, ``too_large`` -> :class:`BatchTooLargeError`, ``not_found`` /
``no_checkpoint`` / ``not_committed`` -> :class:`NotFoundError`.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from chain.errors import ChainError, MempoolFullError
from chain.errors import LedgerClientError as LedgerClientError
from chain.node.results import (
    BatchTooLargeError,
    CommitInfo,
    CommitTimeoutError,
    ConsistencyProof,
    EntryError,
    InclusionProof,
    NotFoundError,
    SubmitResult,
)
from chain.node.wire import encode_batch


class LedgerClientProtocol(Protocol):
    """What the notary service needs from the ledger (HTTP or embedded)."""

    async def submit(self, entries: Sequence[bytes]) -> SubmitResult:
        """Submit a batch; raises MempoolFullError (busy), EntryError, BatchTooLargeError."""
        ...

    async def wait_committed(self, entry_hash: bytes, timeout: float = 30.0) -> CommitInfo:
        """Wait until the entry (by its leaf hash) is committed; CommitTimeoutError."""
        ...

    async def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint note, or None."""
        ...

    async def checkpoint(self, tree_size: int, timeout: float = 0.0) -> str:
        """The committed checkpoint of exactly ``tree_size``; NotFoundError."""
        ...

    async def checkpoint_covering(self, tree_size: int, timeout: float = 0.0) -> str:
        """The smallest committed checkpoint of size >= ``tree_size``; NotFoundError."""
        ...

    async def inclusion_proof(
        self, tree_size: int, *, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof by leaf index or entry hash against ``tree_size``."""
        ...

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof between two tree sizes."""
        ...

    async def block(self, height: int) -> dict[str, Any]:
        """The committed block at ``height`` (JSON form); NotFoundError."""
        ...

    async def status(self) -> dict[str, Any]:
        """Node status (height, view, tree size, latest checkpoint)."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...


class _Unavailable(Exception):
    """This validator cannot answer now (connection, timeout, 5xx other than busy)."""


class LedgerClient:
    """Async HTTP client of the validators' client API; see the module docstring."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        ca: Path | None = None,
        ssl_context: ssl.SSLContext | None = None,
        timeout_s: float = 10.0,
        busy_retries: int = 8,
        max_backoff_s: float = 2.0,
    ) -> None:
        """``urls``: base URLs of validators (tried in order, rotating on failure)."""
        if not urls:
            raise ValueError("LedgerClient needs at least one URL")
        self.urls = [u.rstrip("/") for u in urls]
        self._current = 0
        if ssl_context is None and ca is not None:
            ssl_context = ssl.create_default_context(cafile=str(ca))
        self._ssl = ssl_context
        self._timeout = timeout_s
        self._busy_retries = busy_retries
        self._max_backoff = max_backoff_s
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> LedgerClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=self._ssl if self._ssl else True)
            )
        return self._session

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- one request, with failover -------------------------------------------------------

    async def _request(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        data: bytes | None = None,
        content_type: str | None = None,
        timeout: float | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """Send to the current validator, failing over through all of them once."""
        session = self._get_session()
        errors: list[str] = []
        for attempt in range(len(self.urls)):
            url = self.urls[(self._current + attempt) % len(self.urls)]
            try:
                async with session.request(
                    method,
                    url + path,
                    params=params,
                    data=data,
                    headers={"Content-Type": content_type} if content_type else None,
                    timeout=aiohttp.ClientTimeout(total=timeout or self._timeout),
                ) as resp:
                    body = await resp.read()
                    if resp.status >= 500 and resp.status != 503:
                        raise _Unavailable(f"{url}: HTTP {resp.status}")
                    self._current = (self._current + attempt) % len(self.urls)
                    return resp.status, dict(resp.headers), body
            except (aiohttp.ClientError, TimeoutError, OSError, _Unavailable) as e:
                errors.append(f"{url}: {e or type(e).__name__}")
        self._current = (self._current + 1) % len(self.urls)
        raise LedgerClientError("no validator answered: " + "; ".join(errors))

    @staticmethod
    def _problem(status: int, body: bytes) -> ChainError:
        try:
            doc = json.loads(body)
            code, detail = str(doc.get("code", "")), str(doc.get("detail", ""))
        except (ValueError, AttributeError):
            code, detail = "", body[:200].decode("utf-8", "replace")
        if code == "busy":
            return MempoolFullError(detail)
        if code == "invalid_entry":
            return EntryError(detail)
        if code == "too_large":
            return BatchTooLargeError(detail)
        if code in ("not_found", "no_checkpoint", "not_committed"):
            return NotFoundError(detail)
        return LedgerClientError(detail or f"HTTP {status}", status=status, code=code)

    async def _get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        status, _, body = await self._request("GET", path, params=params)
        if status != 200:
            raise self._problem(status, body)
        return json.loads(body)

    # -- operations --------------------------------------------------------------------

    async def submit(self, entries: Sequence[bytes]) -> SubmitResult:
        """Submit a batch (binary body); retries while busy, then raises MempoolFullError."""
        body = encode_batch(list(entries))
        delay = 0.05
        for attempt in range(self._busy_retries + 1):
            status, headers, payload = await self._request(
                "POST", "/v1/entries", data=body, content_type="application/octet-stream"
            )
            if status == 202:
                return SubmitResult.from_json(json.loads(payload))
            error = self._problem(status, payload)
            if not isinstance(error, MempoolFullError) or attempt == self._busy_retries:
                raise error
            try:
                hint = float(headers.get("Retry-After", "0"))
            except ValueError:
                hint = 0.0
            await asyncio.sleep(min(self._max_backoff, max(delay, min(hint, delay * 4))))
            delay = min(self._max_backoff, delay * 2)
        raise AssertionError("unreachable")

    async def wait_committed(self, entry_hash: bytes, timeout: float = 30.0) -> CommitInfo:
        """Long-poll until committed; raises :class:`CommitTimeoutError` at the deadline."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            poll = max(0.0, min(remaining, 25.0))
            status, _, body = await self._request(
                "GET",
                f"/v1/entries/{entry_hash.hex()}",
                params={"wait": "1", "timeout": f"{poll:.3f}"},
                timeout=poll + self._timeout,
            )
            if status == 200:
                return CommitInfo.from_json(json.loads(body))
            error = self._problem(status, body)
            if not isinstance(error, NotFoundError):
                raise error
            if deadline - time.monotonic() <= 0:
                raise CommitTimeoutError(f"entry {entry_hash.hex()} not committed in {timeout}s")

    async def latest_checkpoint(self) -> str | None:
        """The largest committed checkpoint note, or None before the first one."""
        status, _, body = await self._request("GET", "/v1/checkpoints/latest")
        if status == 404:
            return None
        if status != 200:
            raise self._problem(status, body)
        return body.decode("utf-8")

    async def checkpoint(self, tree_size: int, timeout: float = 0.0) -> str:
        """The committed checkpoint of exactly ``tree_size`` (waiting up to ``timeout``)."""
        return await self._checkpoint(tree_size, timeout, {})

    async def checkpoint_covering(self, tree_size: int, timeout: float = 0.0) -> str:
        """The smallest committed checkpoint of size >= ``tree_size`` (waiting up to
        ``timeout``): what proves an entry of a tree of that size, even if that exact
        size was never signed (a crash between a commit and its checkpoint)."""
        return await self._checkpoint(tree_size, timeout, {"at_least": "1"})

    async def _checkpoint(self, tree_size: int, timeout: float, params: dict[str, str]) -> str:
        if timeout > 0:
            params = {**params, "wait": "1", "timeout": str(timeout)}
        status, _, body = await self._request(
            "GET", f"/v1/checkpoints/{tree_size}", params=params, timeout=timeout + self._timeout
        )
        if status != 200:
            raise self._problem(status, body)
        return body.decode("utf-8")

    async def inclusion_proof(
        self, tree_size: int, *, leaf_index: int | None = None, entry_hash: bytes | None = None
    ) -> InclusionProof:
        """Inclusion proof by leaf index or entry hash against ``tree_size``."""
        params = {"tree_size": str(tree_size)}
        if leaf_index is not None:
            params["leaf_index"] = str(leaf_index)
        if entry_hash is not None:
            params["entry_hash"] = entry_hash.hex()
        return InclusionProof.from_json(await self._get_json("/v1/proofs/inclusion", params))

    async def consistency_proof(self, old_size: int, new_size: int) -> ConsistencyProof:
        """Consistency proof from ``old_size`` to ``new_size``."""
        params = {"from": str(old_size), "to": str(new_size)}
        return ConsistencyProof.from_json(await self._get_json("/v1/proofs/consistency", params))

    async def block(self, height: int) -> dict[str, Any]:
        """The committed block at ``height`` (JSON)."""
        result: dict[str, Any] = await self._get_json(f"/v1/blocks/{height}")
        return result

    async def status(self) -> dict[str, Any]:
        """Status of the validator currently used."""
        result: dict[str, Any] = await self._get_json("/v1/status")
        return result
