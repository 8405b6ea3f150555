"""The aiohttp application of a node: the peer endpoint and the client API.

========================================  ==================================================
route                                     answer
========================================  ==================================================
POST /peer/v1/messages                    204; consensus frames from a peer (wire batch)
POST /peer/v1/entries                     200 {pending}: a validator's copy of submitted
                                          entries (wire entries frame), in the mempool;
                                          503 ``busy``, 422 ``invalid_entry``
POST /v1/entries                          202 {entry_hashes, accepted, already_committed};
                                          body JSON {"entries": [base64, ...]} or an
                                          octet-stream wire batch; 503 ``busy`` +
                                          Retry-After, 413 ``too_large``, 422
                                          ``invalid_entry``
GET /v1/entries/{entry_hash}              200 {leaf_index, block_height, tree_size};
  ?wait=1&timeout=S                       long-poll until committed; 404 ``not_committed``
GET /v1/checkpoints/latest                200 text/plain signed note (>= 2f+1 signatures)
GET /v1/checkpoints/{size}                exactly that size; ?wait=1&timeout=S waits
GET /v1/proofs/inclusion                  ?leaf_index=N|entry_hash=HEX&tree_size=N
GET /v1/proofs/consistency                ?from=N&to=N
GET /v1/blocks/{height}                   the committed block (JSON)
GET /v1/status                            height, view, tree size, peers up, checkpoint
========================================  ==================================================

Errors are RFC 9457 problem details (:mod:`chain.node.problems`).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from chain.consensus.blocks import Limits as BlockLimits
from chain.consensus.errors import InvalidMessageError
from chain.consensus.messages import Message
from chain.errors import ChainError
from chain.node.config import Limits
from chain.node.peer_transport import (
    BATCH_BYTES,
    CHAIN_HEADER,
    PEER_ENTRIES_PATH,
    PEER_HEADER,
    PEER_PATH,
)
from chain.node.problems import Problem, bad_request, problem_middleware
from chain.node.service import LedgerService, checkpoint_size
from chain.node.wire import ForwardedEntries, decode_batch, decode_frame

logger = logging.getLogger(__name__)

Deliver = Callable[[str, Message], None]

SERVICE_KEY = web.AppKey("service", LedgerService)
NOTE_TYPE = "text/plain"


class RateLimitedLog:
    """Logs at most one warning per key per ``interval_s``, counting the suppressed ones."""

    def __init__(self, interval_s: float = 10.0) -> None:
        """No warnings yet."""
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}
        self.total = 0

    def warn(self, key: str, message: str) -> None:
        """Log ``message`` unless ``key`` logged within the interval."""
        self.total += 1
        now = time.monotonic()
        if now - self._last.get(key, -1e9) < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return
        if len(self._last) > 10_000:
            self._last.clear()
        self._last[key] = now
        skipped = self._suppressed.pop(key, 0)
        suffix = f" ({skipped} similar suppressed)" if skipped else ""
        logger.warning("%s%s", message, suffix)


def _int_param(request: web.Request, name: str, *, required: bool = True) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        if required:
            raise bad_request(f"query parameter '{name}' is required")
        return None
    try:
        value = int(raw)
    except ValueError:
        raise bad_request(f"query parameter '{name}' must be an integer") from None
    if value < 0:
        raise bad_request(f"query parameter '{name}' must not be negative")
    return value


def _hash_param(raw: str, name: str) -> bytes:
    try:
        value = bytes.fromhex(raw)
    except ValueError:
        raise bad_request(f"'{name}' must be 64 hex digits") from None
    if len(value) != 32:
        raise bad_request(f"'{name}' must be 64 hex digits")
    return value


def _wait_timeout(request: web.Request, limits: Limits) -> float:
    if request.query.get("wait", "0") not in ("1", "true"):
        return 0.0
    raw = request.query.get("timeout", "30")
    try:
        timeout = float(raw)
    except ValueError:
        raise bad_request("query parameter 'timeout' must be a number of seconds") from None
    if not 0 <= timeout < 1e6:
        raise bad_request("query parameter 'timeout' out of range")
    return min(timeout, limits.max_wait_s)


def peer_max_bytes(block_limits: BlockLimits) -> int:
    """The largest peer request: a sender batch (up to BATCH_BYTES) plus one more frame."""
    return BATCH_BYTES + 2 * block_limits.max_block_bytes + (1 << 20)


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The request body, or 413 ``too_large`` as soon as it exceeds ``limit`` bytes."""
    too_large = Problem(413, "too_large", "Request too large", f"body exceeds {limit} bytes")
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    parts: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large
        parts.append(chunk)
    return b"".join(parts)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


def _note(note: str) -> web.Response:
    return web.Response(
        text=note,
        content_type=NOTE_TYPE,
        charset="utf-8",
        headers={"X-Tree-Size": str(checkpoint_size(note))},
    )


def make_app(
    service: LedgerService,
    *,
    limits: Limits,
    block_limits: BlockLimits,
    deliver: Deliver | None,
) -> web.Application:
    """The node's application; ``deliver(sender, message)`` hands peer messages to the core
    (None: no peer endpoint)."""
    app = web.Application(
        middlewares=[problem_middleware],
        # Peer batches (blocks of up to max_block_bytes) must never hit a client limit an
        # operator lowered; client bodies are bounded separately by _read_body.
        client_max_size=max(limits.max_request_bytes, peer_max_bytes(block_limits)),
    )
    app[SERVICE_KEY] = service
    garbage = RateLimitedLog()
    max_frame = block_limits.max_block_bytes + (1 << 20)
    # A replicated submission is bounded like a client's (a peer's batch may be larger
    # than a block).
    replica_limits = dataclasses.replace(
        block_limits, max_entries=max(block_limits.max_entries, limits.max_batch_entries)
    )

    async def peer_messages(request: web.Request) -> web.Response:
        peer = request.headers.get(PEER_HEADER, "?")[:64]
        if deliver is None:
            raise Problem(404, "not_found", "Not found", "this node takes no peer messages")
        if request.headers.get(CHAIN_HEADER) != service.chain_id:
            garbage.warn(f"chain:{peer}", f"peer {peer!r}: message for another chain dropped")
            raise Problem(409, "wrong_chain", "Wrong chain", f"this node serves {service.chain_id}")
        body = await request.read()
        try:
            frames = decode_batch(body, max_frame)
        except InvalidMessageError as e:
            garbage.warn(f"batch:{peer}", f"peer {peer!r}: undecodable batch dropped: {e}")
            raise bad_request("undecodable message batch") from None
        bad = 0
        for frame in frames:
            try:
                message = decode_frame(frame, block_limits)
            except InvalidMessageError as e:
                bad += 1
                garbage.warn(f"frame:{peer}", f"peer {peer!r}: undecodable message dropped: {e}")
                continue
            if isinstance(message, ForwardedEntries):
                with contextlib.suppress(ChainError):  # best effort (older senders)
                    service.accept_replica(message.entries)
            else:
                deliver(peer, message)
        if bad and bad == len(frames):
            raise bad_request(f"{bad} undecodable messages")
        return web.Response(status=204)

    async def submit(request: web.Request) -> web.Response:
        body = await _read_body(request, limits.max_request_bytes)
        entries: list[bytes]
        if request.content_type == "application/octet-stream":
            try:
                entries = decode_batch(body, 1 << 24)
            except InvalidMessageError as e:
                raise bad_request(f"malformed entry batch: {e}") from None
        else:
            try:
                doc = json.loads(body)
            except (ValueError, UnicodeDecodeError):
                raise bad_request("body is not JSON") from None
            raw = doc.get("entries") if isinstance(doc, dict) else None
            if not isinstance(raw, list) or not all(isinstance(e, str) for e in raw):
                raise Problem(
                    422,
                    "invalid_entry",
                    "Invalid entries",
                    "'entries' must be a list of base64 strings",
                )
            try:
                entries = [base64.b64decode(e, validate=True) for e in raw]
            except (binascii.Error, ValueError):
                raise Problem(
                    422, "invalid_entry", "Invalid entries", "an entry is not valid base64"
                ) from None
        result = await service.submit(entries)
        return _json(result.to_json(), status=202)

    async def peer_entries(request: web.Request) -> web.Response:
        # Entries a validator replicates before acknowledging a submission: answered
        # 200 only once they are in this node's mempool (503 busy, 422 invalid).
        if deliver is None:
            raise Problem(404, "not_found", "Not found", "this node takes no peer messages")
        if request.headers.get(CHAIN_HEADER) != service.chain_id:
            raise Problem(409, "wrong_chain", "Wrong chain", f"this node serves {service.chain_id}")
        body = await _read_body(request, max(max_frame, limits.max_request_bytes + (1 << 20)))
        try:
            message = decode_frame(body, replica_limits)
        except InvalidMessageError as e:
            raise bad_request(f"undecodable entries: {e}") from None
        if not isinstance(message, ForwardedEntries):
            raise bad_request("not an entries frame")
        return _json({"pending": service.accept_replica(message.entries)})

    async def entry(request: web.Request) -> web.Response:
        h = _hash_param(request.match_info["entry_hash"], "entry_hash")
        info = await service.wait_committed(h, _wait_timeout(request, limits))
        if info is None:
            raise Problem(
                404, "not_committed", "Not committed", f"entry {h.hex()} is not committed"
            )
        return _json(info.to_json())

    async def latest_checkpoint(request: web.Request) -> web.Response:
        note = service.latest_checkpoint()
        if note is None:
            raise Problem(404, "no_checkpoint", "No checkpoint", "no committed checkpoint yet")
        return _note(note)

    async def checkpoint(request: web.Request) -> web.Response:
        try:
            size = int(request.match_info["size"])
        except ValueError:
            raise bad_request("checkpoint size must be an integer") from None
        timeout = _wait_timeout(request, limits)
        if request.query.get("at_least", "0") in ("1", "true"):
            note = await service.wait_checkpoint(size, timeout)
            missing = f"no committed checkpoint of size {size} or more"
        else:
            note = service.checkpoint(size)
            if note is None and timeout > 0:
                await service.wait_checkpoint(size, timeout)
                note = service.checkpoint(size)
            missing = f"no committed checkpoint of size {size}"
        if note is None:
            raise Problem(404, "no_checkpoint", "No checkpoint", missing)
        return _note(note)

    async def inclusion(request: web.Request) -> web.Response:
        tree_size = _int_param(request, "tree_size")
        leaf_index = _int_param(request, "leaf_index", required=False)
        raw_hash = request.query.get("entry_hash")
        eh = _hash_param(raw_hash, "entry_hash") if raw_hash else None
        if (leaf_index is None) == (eh is None):
            raise bad_request("give exactly one of 'leaf_index' and 'entry_hash'")
        assert tree_size is not None
        proof = service.inclusion_proof(tree_size=tree_size, leaf_index=leaf_index, entry_hash=eh)
        return _json(proof.to_json())

    async def consistency(request: web.Request) -> web.Response:
        old, new = _int_param(request, "from"), _int_param(request, "to")
        assert old is not None and new is not None
        return _json(service.consistency_proof(old, new).to_json())

    async def block(request: web.Request) -> web.Response:
        try:
            height = int(request.match_info["height"])
        except ValueError:
            raise bad_request("height must be an integer") from None
        return _json(service.block(height))

    async def status(request: web.Request) -> web.Response:
        s = service.status()
        s["garbage_dropped"] = garbage.total
        return _json(s)

    app.router.add_post(PEER_PATH, peer_messages)
    app.router.add_post(PEER_ENTRIES_PATH, peer_entries)
    app.router.add_post("/v1/entries", submit)
    app.router.add_get("/v1/entries/{entry_hash}", entry)
    app.router.add_get("/v1/checkpoints/latest", latest_checkpoint)
    app.router.add_get("/v1/checkpoints/{size}", checkpoint)
    app.router.add_get("/v1/proofs/inclusion", inclusion)
    app.router.add_get("/v1/proofs/consistency", consistency)
    app.router.add_get("/v1/blocks/{height}", block)
    app.router.add_get("/v1/status", status)
    return app
