"""Log streams over real sockets: appending in order, idempotent resends, conflicts,
pipelined segments ordered by the service, anchoring, and receipts that chain."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chain.merkle import leaf_hash
from chain.trust import TrustFile
from notary.entry import EntryError, commitment
from notary.log_entry import GENESIS_PREV, link_error, parse_log_segment_entry
from notary.receipt import parse_receipt
from notary.server import Notary, running
from notary.verify import DocumentDigest, verify_receipt
from tests.notary.test_service_e2e import migrate, settings_for

ZERO = "0" * 64


class Streams:
    def __init__(self, notary: Notary, url: str, http: aiohttp.ClientSession) -> None:
        self.notary, self.url, self.http = notary, url, http

    async def put(
        self, name: str, seq: int, data: bytes, start: int, prev: str, **extra: str
    ) -> tuple[int, dict[str, Any]]:
        params = {
            "start": str(start),
            "end": str(start + len(data)),
            "sha256": hashlib.sha256(data).hexdigest(),
            "prev_sha256": prev,
            **extra,
        }
        async with self.http.put(
            f"{self.url}/v1/streams/{name}/segments/{seq}", params=params, data=data
        ) as r:
            return r.status, await r.json(content_type=None)

    async def get(self, path: str, **params: str) -> tuple[int, dict[str, Any]]:
        async with self.http.get(f"{self.url}{path}", params=params) as r:
            return r.status, await r.json(content_type=None)

    async def wait_anchored(self, name: str, seq: int, timeout: float = 60) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, body = await self.get(f"/v1/streams/{name}")
            assert status == 200, body
            if body["anchored_seq"] >= seq:
                return body
            assert asyncio.get_running_loop().time() < deadline, body
            await asyncio.sleep(0.05)


@pytest.fixture
async def api(tmp_path: Path, sqlite_url: str) -> AsyncIterator[Streams]:
    await migrate(sqlite_url)
    async with (
        running(settings_for(tmp_path, sqlite_url)) as (notary, url),
        aiohttp.ClientSession() as http,
    ):
        yield Streams(notary, url, http)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_append_anchor_and_chain(api: Streams) -> None:
    parts = [b"a line\n" * 3, b"second segment\n", b"x\n" * 1000]
    start, prev = 0, ZERO
    for seq, data in enumerate(parts):
        status, body = await api.put("broker-1", seq, data, start, prev)
        assert status == 201, body
        assert (body["seq"], body["start"], body["end"]) == (seq, start, start + len(data))
        start, prev = start + len(data), sha(data)
    head = await api.wait_anchored("broker-1", 2)
    assert head["head"]["seq"] == 2 and head["head"]["end"] == start

    status, listing = await api.get("/v1/streams/broker-1/segments", receipts="true")
    assert status == 200 and [g["seq"] for g in listing["segments"]] == [0, 1, 2]
    trust = TrustFile.load(api.notary.trust_path)
    previous = None
    for g, data in zip(listing["segments"], parts, strict=True):
        receipt = parse_receipt(json.dumps(g["receipt"]))
        entry = parse_log_segment_entry(receipt.entry)
        assert entry.stream == head["id"] and entry.seq == g["seq"]
        assert (entry.start, entry.end) == (g["start"], g["end"])
        assert entry.commitment == commitment(receipt.salt, hashlib.sha256(data).digest())
        assert link_error(previous, entry) is None
        assert leaf_hash(receipt.entry).hex() == g["entry_hash"]
        # Nothing of the content or the stream's name is on the ledger.
        assert b"broker-1" not in receipt.entry and sha(data).encode() not in receipt.entry
        # The receipt is a normal receipt up to the entry type: the checkpoint and
        # inclusion checks of notary verify pass; its entry check does not know log segments.
        verdict = verify_receipt(DocumentDigest(hashlib.sha256(data).digest()), receipt, trust)
        names = {c.name: c.outcome.value for c in verdict.checks}
        assert names["threshold"] == "pass" and names["inclusion"] == "pass"
        previous = entry
    assert previous is not None and previous.prev != GENESIS_PREV


async def test_resend_is_idempotent_and_a_different_segment_conflicts(api: Streams) -> None:
    data = b"hello\n"
    status, first = await api.put("s", 0, data, 0, ZERO)
    assert status == 201
    status, again = await api.put("s", 0, data, 0, ZERO)
    assert status == 200 and again["document_id"] == first["document_id"]
    status, problem = await api.put("s", 0, b"HELLO\n", 0, ZERO)
    assert status == 409 and problem["code"] == "segment_conflict", problem
    assert problem["sha256"] == sha(data)
    status, listing = await api.get("/v1/streams/s/segments")
    assert len(listing["segments"]) == 1


async def test_segments_that_do_not_continue_the_head_are_refused(api: Streams) -> None:
    a = b"one\n"
    assert (await api.put("t", 0, a, 0, ZERO))[0] == 201
    # Wrong start offset.
    status, problem = await api.put("t", 1, b"two\n", 3, sha(a))
    assert status == 409 and problem["code"] == "segment_link_mismatch", problem
    # Wrong previous digest.
    status, problem = await api.put("t", 1, b"two\n", len(a), sha(b"other"))
    assert status == 409 and problem["code"] == "segment_link_mismatch", problem
    # Seq 0 not at 0.
    status, problem = await api.put("u", 0, b"x\n", 5, ZERO)
    assert status == 409 and problem["code"] == "segment_link_mismatch"
    # Body length differs from the range.
    async with api.http.put(
        f"{api.url}/v1/streams/t/segments/1",
        params={"start": "4", "end": "10", "sha256": sha(b"ab"), "prev_sha256": sha(a)},
        data=b"ab",
    ) as r:
        assert r.status == 400 and (await r.json(content_type=None))["code"] == "bad_request"
    status, head = await api.get("/v1/streams/t")
    assert head["head"]["seq"] == 0


async def test_pipelined_segments_are_ordered_by_the_service(api: Streams) -> None:
    parts = [f"line {i}\n".encode() * (i + 1) for i in range(12)]
    starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
    prevs = [ZERO] + [sha(p) for p in parts[:-1]]
    # Send the later segments first: each waits for its predecessor.
    results = await asyncio.gather(
        *(api.put("pipe", i, parts[i], starts[i], prevs[i]) for i in reversed(range(len(parts))))
    )
    assert all(status == 201 for status, _ in results), results
    head = await api.wait_anchored("pipe", len(parts) - 1)
    assert head["head"]["end"] == sum(len(p) for p in parts)
    status, listing = await api.get("/v1/streams/pipe/segments", receipts="1")
    assert status == 200
    previous = None
    for g in listing["segments"]:
        entry = parse_log_segment_entry(g["receipt"]["entry"].encode())
        assert link_error(previous, entry) is None
        previous = entry


async def test_a_missing_predecessor_times_out_as_out_of_order(api: Streams) -> None:
    streams = api.notary.app
    from notary.http.streams import STREAMS

    streams[STREAMS].order_timeout = 0.5
    assert (await api.put("gap", 0, b"a\n", 0, ZERO))[0] == 201
    status, problem = await api.put("gap", 2, b"c\n", 4, sha(b"b\n"))
    assert status == 409 and problem["code"] == "segment_out_of_order", problem
    assert problem["head_seq"] == 0


async def test_a_waiting_segment_is_woken_by_its_predecessor_link(api: Streams) -> None:
    from notary.http.streams import STREAMS

    service = api.notary.app[STREAMS]
    # No polling at all: only the link of the predecessor can wake a waiting segment.
    service._poll = service.order_timeout = 3600
    parts = [f"w {i}\n".encode() * 3 for i in range(6)]
    starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
    prevs = [ZERO] + [sha(p) for p in parts[:-1]]
    assert (await api.put("wake", 0, parts[0], 0, ZERO))[0] == 201
    results = await asyncio.wait_for(
        asyncio.gather(
            *(api.put("wake", i, parts[i], starts[i], prevs[i]) for i in range(5, 0, -1))
        ),
        timeout=60,
    )
    assert [status for status, _ in results] == [201] * 5, results
    assert service._waiters == {}  # every waiter removed itself


def pipeline(count: int, tag: str) -> tuple[list[bytes], list[int], list[str]]:
    """``count`` segments: their bytes, start offsets and previous digests."""
    parts = [f"{tag} {i}\n".encode() * (i % 5 + 1) for i in range(count)]
    starts = [sum(len(p) for p in parts[:i]) for i in range(count)]
    return parts, starts, [ZERO] + [sha(p) for p in parts[:-1]]


async def assert_chain(api: Streams, name: str, count: int) -> None:
    """Segments 0..count-1 anchored, each linked to the one before, one document each."""
    from sqlalchemy import func, select

    from notary.index.models import Document, LogSegment

    await api.wait_anchored(name, count - 1)
    status, listing = await api.get(f"/v1/streams/{name}/segments", receipts="1")
    assert status == 200 and [g["seq"] for g in listing["segments"]] == list(range(count))
    previous = None
    for g in listing["segments"]:
        entry = parse_log_segment_entry(g["receipt"]["entry"].encode())
        assert link_error(previous, entry) is None, g
        previous = entry
    from notary.http.streams import STREAMS

    sessions = api.notary.app[STREAMS].notary.sessions
    async with sessions() as s:
        docs = await s.scalar(
            select(func.count()).select_from(Document).where(Document.kind == "broker_log")
        )
        segments = await s.scalar(select(func.count()).select_from(LogSegment))
    assert docs == segments == count  # no document left over by a refused or failed append


async def test_consecutive_segments_commit_together(api: Streams) -> None:
    from notary.http.streams import STREAMS

    service = api.notary.app[STREAMS]
    count = 40
    parts, starts, prevs = pipeline(count, "g")
    # Segments 1.. are stored and wait for segment 0; its link lets them all link.
    later = [
        asyncio.ensure_future(api.put("grp", i, parts[i], starts[i], prevs[i]))
        for i in range(1, count)
    ]

    async def all_waiting() -> None:
        while True:  # each stored segment waits for its predecessor
            if sum(len(w) for w in service._waiters.values()) == count - 1:
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_waiting(), timeout=30)
    before = service.commits
    assert (await api.put("grp", 0, parts[0], 0, ZERO))[0] == 201
    results = await asyncio.wait_for(asyncio.gather(*later), timeout=60)
    assert [status for status, _ in results] == [201] * (count - 1), results
    assert service.commits - before <= count // 4, service.commits - before
    await assert_chain(api, "grp", count)


async def test_a_failed_group_fails_the_segments_linked_to_it_and_resends_repair(
    api: Streams,
) -> None:
    """A real database failure (a trigger refusing segment 5's row) fails segment 5 and
    every segment linked after it (the segments before it in its group commit alone);
    their documents are removed, the head stays at 4, and resending them (as the client
    does) completes the chain."""
    from sqlalchemy import text

    from notary.http.streams import STREAMS

    sessions = api.notary.app[STREAMS].notary.sessions
    async with sessions.begin() as s:
        await s.execute(
            text(
                "CREATE TRIGGER refuse_5 BEFORE INSERT ON log_segments WHEN NEW.seq = 5 "
                "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
            )
        )
    count = 12
    parts, starts, prevs = pipeline(count, "f")
    tasks = [
        asyncio.ensure_future(api.put("fail", i, parts[i], starts[i], prevs[i]))
        for i in range(count)
    ]
    done, _ = await asyncio.wait([tasks[5]], timeout=30)
    assert done and tasks[5].result()[0] == 500, tasks[5]
    async with sessions.begin() as s:
        await s.execute(text("DROP TRIGGER refuse_5"))
    status, head = await api.get("/v1/streams/fail")
    assert status == 200 and head["head"]["seq"] == 4, head  # the segments before 5 commit
    # Segments after 5 either failed with it or still wait for it: resend the failed ones.
    for i in range(count):
        if tasks[i].done() and tasks[i].result()[0] != 201:
            assert i >= 5 and tasks[i].result()[0] == 500, (i, tasks[i].result())
            tasks[i] = asyncio.ensure_future(api.put("fail", i, parts[i], starts[i], prevs[i]))
    results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    assert [status for status, _ in results] == [201] * count, results
    await assert_chain(api, "fail", count)


async def test_a_group_made_stale_by_another_replica_links_again(api: Streams) -> None:
    """This replica links segments 1 and 2 to its own segment 1 while another replica
    commits a segment 1 of its own (same bytes, another salt, so another entry hash): the
    group's conditional commit fails, 1 is answered as a resend, and 2 links again to the
    other replica's segment 1."""
    from notary.http.auth import LOCAL_ADMIN
    from notary.http.streams import STREAMS
    from notary.streams import SegmentMeta, StreamService, now

    mine = api.notary.app[STREAMS]
    other = StreamService(mine.notary)
    parts, starts, prevs = pipeline(3, "s")
    assert (await api.put("stale", 0, parts[0], 0, ZERO))[0] == 201

    async def body() -> AsyncIterator[bytes]:
        yield parts[1]

    meta = SegmentMeta(1, starts[1], starts[2], sha(parts[1]), prevs[1], now())
    seg1, created = await other.append(LOCAL_ADMIN, "stale", meta, body())
    assert created
    commits = mine.commits
    results = await asyncio.gather(
        api.put("stale", 2, parts[2], starts[2], prevs[2]),
        api.put("stale", 1, parts[1], starts[1], prevs[1]),
    )
    assert [status for status, _ in results] == [201, 200], results
    assert results[1][1]["entry_hash"] == seg1.entry_hash
    assert mine.commits == commits + 1  # only segment 2, after linking again
    await assert_chain(api, "stale", 3)


async def test_a_head_moved_by_another_replica_is_found(api: Streams) -> None:
    """Two StreamServices over one database stand for two replicas of the API: each
    knows only its own commits, and must still follow the database."""
    from notary.http.auth import LOCAL_ADMIN
    from notary.http.streams import STREAMS
    from notary.streams import SegmentMeta, StreamService, now

    mine = api.notary.app[STREAMS]
    mine._poll = 0.05
    other = StreamService(mine.notary)
    parts = [b"r0\n", b"r1\n", b"r2\n", b"r3\n"]
    prevs = [ZERO] + [sha(p) for p in parts[:-1]]

    async def other_appends(seq: int) -> None:
        async def body() -> AsyncIterator[bytes]:
            yield parts[seq]

        meta = SegmentMeta(seq, 3 * seq, 3 * seq + 3, sha(parts[seq]), prevs[seq], now())
        assert (await other.append(LOCAL_ADMIN, "rep", meta, body()))[1]

    assert (await api.put("rep", 0, parts[0], 0, ZERO))[0] == 201
    await other_appends(1)
    # This replica still believes the head is segment 0: a resend of 1 is found anyway.
    status, again = await api.put("rep", 1, parts[1], 3, prevs[1])
    assert status == 200 and again["seq"] == 1, again
    # Segment 3 waits here while the other replica commits segment 2.
    waiting = asyncio.ensure_future(api.put("rep", 3, parts[3], 9, prevs[3]))
    await other_appends(2)
    status, seg3 = await asyncio.wait_for(waiting, timeout=30)
    assert status == 201, seg3
    head = await api.wait_anchored("rep", 3)
    assert head["head"]["seq"] == 3 and head["head"]["end"] == 12
    status, listing = await api.get("/v1/streams/rep/segments", receipts="1")
    previous = None
    for g in listing["segments"]:
        entry = parse_log_segment_entry(g["receipt"]["entry"].encode())
        assert link_error(previous, entry) is None
        previous = entry
    assert previous is not None and previous.seq == 3


async def test_listing_filters_and_bad_input(api: Streams) -> None:
    start, prev = 0, ZERO
    times = ["2026-01-01T10:00:00Z", "2026-01-01T11:00:00Z", "2026-01-02T10:00:00Z"]
    for seq, t in enumerate(times):
        data = f"{seq}\n".encode()
        status, _ = await api.put("f", seq, data, start, prev, cut_at=t)
        assert status == 201
        start, prev = start + len(data), sha(data)
    status, body = await api.get(
        "/v1/streams/f/segments", from_time="2026-01-01T10:30:00Z", to_time="2026-01-02T00:00:00Z"
    )
    assert status == 200 and [g["seq"] for g in body["segments"]] == [1]
    status, body = await api.get("/v1/streams/f/segments", from_seq="1", to_seq="2")
    assert [g["seq"] for g in body["segments"]] == [1, 2]
    status, body = await api.get("/v1/streams")
    assert [s["name"] for s in body["streams"]] == ["f"]

    for path, params, code in [
        ("/v1/streams/nope", {}, "stream_not_found"),
        ("/v1/streams/f/segments", {"from_time": "yesterday"}, "bad_request"),
        ("/v1/streams/f/segments", {"from_seq": "-1"}, "bad_request"),
        ("/v1/streams/.bad", {}, "bad_request"),
    ]:
        status, problem = await api.get(path, **params)
        assert problem["code"] == code and status in (400, 404), (path, problem)
    status, problem = await api.put("f", 3, b"x\n", start, "zz")
    assert status == 400 and "prev_sha256" in problem["detail"]


def test_entry_parser_is_strict() -> None:
    from notary.log_entry import log_segment_entry

    e = log_segment_entry(
        stream="ab" * 16, seq=1, start=5, end=9, prev=b"\1" * 32, salt=b"\2" * 32, sha256=b"\3" * 32
    )
    raw = e.to_bytes()
    assert parse_log_segment_entry(raw) == e
    bad = [
        raw.replace(b'"v":1', b'"v":2'),
        raw.replace(b'"seq":1', b'"seq":-1'),
        raw.replace(b'"seq":1', b'"seq":true'),
        raw.replace(b"{", b'{"extra":1,', 1),
        raw.replace(b'"end":9', b'"end":4'),
        raw + b" ",
        b'{"commitment":"' + b"0" * 64 + b'","type":"document","v":1}',
    ]
    for b in bad:
        with pytest.raises(EntryError):
            parse_log_segment_entry(b)
