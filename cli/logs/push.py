"""Pushing log files to their streams: read, cut, spool, send in order, wait for anchoring.

One :class:`StreamPusher` per stream. Its reader (the calling thread) reads the file
(cli.logs.follower), cuts segments (cli.logs.segmenter), writes them to the spool in
batches (cli.logs.spool) and only then records the new read position in the state file
(cli.logs.state). Its :class:`Sender` thread takes spooled segments in seq order and
sends them with several requests in flight (the service orders them), deleting a spool
file once all its segments are acknowledged.

Crash safety: the state file never runs ahead of the spool, and the spool is only
emptied by acknowledgements, so after a kill at any instant the next run resends what
the spool holds (identical resends are no-ops on the service) and reads on from the
state, or from the newest spooled segment when the kill fell between the two writes.

Unreachable service: segments accumulate in the spool while the sender retries with
backoff. The spool is bounded; when it is full while the service is unreachable the
push stops with exit code 3 and one line. Nothing read is lost: the batch that did not
fit was not recorded as read.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cli.client import ApiError, Client
from cli.logs.follower import ROTATED, Cursor, Source
from cli.logs.segmenter import Segmenter
from cli.logs.spool import Record, Spool
from cli.logs.state import StreamState, load_state, locked, save_state, stream_dir

CHUNK = 1024 * 1024
BATCH_BYTES = 8 * 1024 * 1024
BATCH_SEGMENTS = 512
WORKERS = 64  # requests in flight per stream (the service orders them; linking is cheap)
INFLIGHT_BYTES = 32 * 1024 * 1024  # bytes of segments in flight per stream
# Requests in flight over all the streams of one push (a folder of many files).
_SLOTS = threading.BoundedSemaphore(128)
POLL = 0.1
_END = object()


class PushError(Exception):
    """The push cannot go on; ``exit_code`` as documented in docs/log-streams.md."""

    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class PushOptions:
    segment_bytes: int
    segment_seconds: float
    spool_bytes: int
    follow: bool
    wait: bool
    wait_timeout: float
    drain_timeout: float = 10.0
    offline_grace: float = 30.0


@dataclass
class PushResult:
    stream: str
    path: str
    segments: int = 0
    bytes: int = 0
    head_seq: int = -1
    anchored_seq: int = -1
    spooled_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "stream": self.stream,
            "path": self.path,
            "segments": self.segments,
            "bytes": self.bytes,
            "head_seq": self.head_seq,
            "anchored_seq": self.anchored_seq,
            "spooled_bytes": self.spooled_bytes,
        }


def _segment_path(stream: str, seq: int | None = None) -> str:
    base = f"/v1/streams/{quote(stream, safe='')}"
    return base if seq is None else f"{base}/segments/{seq}"


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _offline(e: ApiError) -> bool:
    """Errors that a later retry may cure: no answer, or the service is unavailable."""
    if e.status is None:
        return e.code != "tls_error"
    return e.status >= 500


class Sender(threading.Thread):
    """Sends spooled segments in seq order, several in flight; see the module docstring."""

    def __init__(
        self, stream: str, spool: Spool, make_client: Callable[[], Client], wake: threading.Event
    ) -> None:
        super().__init__(name=f"sender-{stream}", daemon=True)
        self.stream = stream
        self.spool = spool
        self._make_client = make_client
        self._local = threading.local()
        self.files: queue.Queue[Path] = queue.Queue()
        self.reader_done = threading.Event()
        self.abandon = threading.Event()
        self.wake = wake  # set on every acknowledgement (the reader may wait for space)
        self.acked_seq = -1
        self.acked_cursor: Cursor | None = None  # read position of the last acknowledged
        self.sent_segments = 0
        self.sent_bytes = 0
        self.offline: str | None = None  # why the service is unreachable, while it is
        self.fatal: PushError | None = None

    def _client(self) -> Client:
        client: Client | None = getattr(self._local, "client", None)
        if client is None:
            client = self._make_client()
            self._local.client = client
        return client

    def _send(self, record: Record, data: bytes) -> dict[str, Any]:
        params = {
            "start": str(record.start),
            "end": str(record.end),
            "sha256": record.sha256,
            "prev_sha256": record.prev_sha256,
            "cut_at": record.cut_at,
        }
        return self._client().request_json(
            "PUT",
            _segment_path(self.stream, record.seq),
            params=params,
            body=data,
            headers={"Content-Type": "text/plain"},
        )

    def _records(self) -> Iterator[tuple[Record, bytes, Path | None] | None]:
        """Spooled segments in order (with the file to delete after the last of each
        file); None when nothing is ready now; ends when the reader is done."""
        while not self.abandon.is_set():
            try:
                path = self.files.get(timeout=POLL)
            except queue.Empty:
                if self.reader_done.is_set() and self.files.empty():
                    return
                yield None
                continue
            items = list(self.spool.read(path))
            for i, (record, data) in enumerate(items):
                yield record, data, path if i == len(items) - 1 else None

    def run(self) -> None:
        try:
            with cf.ThreadPoolExecutor(WORKERS, thread_name_prefix=f"put-{self.stream}") as pool:
                self._loop(pool)
        except PushError as e:
            self.fatal = e
        except Exception as e:  # a bug or an unreadable spool: stop the push, say why
            self.fatal = PushError(3, f"stream {self.stream}: sending failed: {e}")
        finally:
            self.wake.set()

    def _loop(self, pool: cf.ThreadPoolExecutor) -> None:
        pending: deque[tuple[Record, bytes, Path | None, cf.Future[dict[str, Any]]]] = deque()
        try:
            self._send_all(pool, pending, self._records())
        finally:
            for _ in pending:  # the slots of the requests still in flight
                _SLOTS.release()

    def _send_all(
        self,
        pool: cf.ThreadPoolExecutor,
        pending: deque[tuple[Record, bytes, Path | None, cf.Future[dict[str, Any]]]],
        records: Iterator[tuple[Record, bytes, Path | None] | None],
    ) -> None:
        exhausted = False
        inflight = 0
        backoff = 0.2
        while not self.abandon.is_set():
            while not exhausted and len(pending) < WORKERS and inflight < INFLIGHT_BYTES:
                # A slot first (waiting a little only when nothing of ours is in flight).
                slot = _SLOTS.acquire(blocking=False) if pending else _SLOTS.acquire(timeout=POLL)
                if not slot:
                    break
                item = next(records, _END)
                if not isinstance(item, tuple):
                    _SLOTS.release()
                    exhausted = item is _END
                    break
                record, data, last = item
                pending.append((record, data, last, pool.submit(self._send, record, data)))
                inflight += len(data)
            if not pending:
                if exhausted:
                    return
                continue
            record, data, last, future = pending[0]
            done, _ = cf.wait([future], timeout=POLL)
            if not done:
                continue
            error = future.exception()
            if error is None:
                pending.popleft()
                _SLOTS.release()
                inflight -= len(data)
                self.acked_seq = record.seq
                self.acked_cursor = record.cursor
                self.sent_segments += 1
                self.sent_bytes += len(data)
                self.offline = None
                backoff = 0.2
                if last is not None:
                    self.spool.remove(last)
                self.wake.set()
                continue
            if not isinstance(error, ApiError) or not _offline(error):
                raise PushError(3, self._why(record, error))
            # Unreachable or unavailable: let every request in flight end, then send
            # them all again, in order, after a pause (accepted ones answer 200).
            self.offline = str(error)
            self.wake.set()
            cf.wait([p[3] for p in pending])
            if self.abandon.wait(backoff):
                return
            backoff = min(backoff * 2, 5.0)
            resent = [(r, d, lst, pool.submit(self._send, r, d)) for r, d, lst, _ in pending]
            pending.clear()  # in place: the caller releases the slots of what is left
            pending.extend(resent)

    def _why(self, record: Record, error: BaseException) -> str:
        if isinstance(error, ApiError):
            if error.code == "segment_out_of_order":
                return (
                    f"stream {self.stream}: the service does not have the segment before "
                    f"{record.seq} ({error.detail}); was the local state of this stream "
                    "replaced or another pusher using it?"
                )
            return f"stream {self.stream}: segment {record.seq} refused: {error}"
        return f"stream {self.stream}: segment {record.seq}: {error}"


class StreamPusher:
    """Reads one file into one stream; ``run`` returns when done (or stopped)."""

    def __init__(
        self,
        path: Path,
        stream: str,
        url: str,
        state_dir: Path,
        options: PushOptions,
        make_client: Callable[[], Client],
        stop: threading.Event,
        warn: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path.absolute()
        self.stream = stream
        self.url = url
        self.folder = stream_dir(state_dir, url, stream)
        self.options = options
        self._make_client = make_client
        self.stop = stop
        self._warn = warn
        self._clock = clock
        self.result = PushResult(stream=stream, path=str(self.path))
        self._sender: Sender | None = None
        self._start_cursor: Cursor | None = None
        self.phase = "starting"  # reading, sending, anchoring, done (for a progress display)

    def progress(self) -> tuple[int, int]:
        """(bytes of the file acknowledged by the service, the file's size now), for a
        progress display: the position of the last acknowledged segment in the file
        generation at the path (0 once the file was rotated and not yet read again)."""
        try:
            st = self.path.stat()
        except OSError:
            return 0, 0
        sender = self._sender
        cursor = (sender.acked_cursor if sender else None) or self._start_cursor
        if cursor is None or (cursor.dev, cursor.ino) != (st.st_dev, st.st_ino):
            return 0, st.st_size
        return min(cursor.pos, st.st_size), st.st_size

    def run(self) -> PushResult:
        """Push until the file's end (or, with follow, until ``stop``); raise PushError."""
        with locked(self.folder):
            return self._run()

    def _reconcile(self, spool: Spool) -> StreamState:
        state_path = self.folder / "state.json"
        state = load_state(state_path) or StreamState(url=self.url, stream=self.stream)
        last = spool.last()
        if last is not None and last.seq >= state.next_seq:
            # Killed between the spool write and the state write: the spool is right.
            state = state.advanced(last.seq, last.end, last.sha256, last.cursor)
        if state.next_seq == 0:
            self._refuse_unknown_history()
        if state.source != str(self.path):
            state = StreamState(
                url=state.url,
                stream=state.stream,
                next_seq=state.next_seq,
                offset=state.offset,
                prev_sha256=state.prev_sha256,
                cursor=None,
                source=str(self.path),
            )
        return state

    def _refuse_unknown_history(self) -> None:
        try:
            head = self._make_client().get_json(_segment_path(self.stream))
        except ApiError:
            return  # unknown (404) or unreachable: start; the service refuses a clash
        seq = int(head.get("head", {}).get("seq", -1))
        if seq >= 0:
            raise PushError(
                2,
                f"stream {self.stream} already has segments 0..{seq} at {self.url}, and there "
                f"is no local state for it in {self.folder}: restore that folder, or push "
                "to a new stream name",
            )

    def _run(self) -> PushResult:
        spool = Spool(self.folder / "spool", self.options.spool_bytes)
        state = self._reconcile(spool)
        self._start_cursor = state.cursor
        wake = threading.Event()
        sender = Sender(self.stream, spool, self._make_client, wake)
        self._sender = sender
        self.phase = "reading"
        for path in spool.files():
            sender.files.put(path)
        sender.start()
        try:
            state = self._read(state, spool, sender)
        except BaseException:
            sender.abandon.set()
            sender.join()
            raise
        sender.reader_done.set()
        self.phase = "sending"
        self._drain(sender, spool)
        self.result.segments = sender.sent_segments
        self.result.bytes = sender.sent_bytes
        self.result.head_seq = state.next_seq - 1
        self.result.spooled_bytes = spool.size
        if sender.fatal is not None:
            raise sender.fatal
        if self.options.wait and not self.options.follow and spool.size == 0:
            self.phase = "anchoring"
            self.result.anchored_seq = self._wait_anchored(state.next_seq - 1)
        self.phase = "done"
        return self.result

    def _drain(self, sender: Sender, spool: Spool) -> None:
        if self.options.follow or self.stop.is_set():
            # Stopped: send what is spooled for a while; the rest is sent next time.
            sender.join(self.options.drain_timeout)
            if sender.is_alive():
                sender.abandon.set()
                self.result.notes.append(
                    f"stream {self.stream}: service unreachable; spooled segments are "
                    "sent by the next push"
                )
            sender.join()
            return
        # The whole file is read: wait for the sender, unless the service stays
        # unreachable for offline_grace seconds (the spool keeps the segments).
        offline_since: float | None = None
        while sender.is_alive():
            sender.join(POLL)
            if sender.offline is None:
                offline_since = None
                continue
            offline_since = offline_since or self._clock()
            if self._clock() - offline_since > self.options.offline_grace:
                sender.abandon.set()
                sender.join()
                raise PushError(
                    3,
                    f"stream {self.stream}: the service is unreachable ({sender.offline}); "
                    f"{spool.size} bytes of segments wait in {spool.folder} and are sent "
                    "by the next push",
                )

    # -- reading -----------------------------------------------------------------------

    def _read(self, state: StreamState, spool: Spool, sender: Sender) -> StreamState:
        source = Source(
            self.path,
            state.cursor,
            follow=self.options.follow,
            warn=self._warn,
        )
        seg = Segmenter(self.options.segment_bytes, self.options.segment_seconds, clock=self._clock)
        batch: list[tuple[Record, bytes]] = []
        batch_bytes = 0
        # A batch is at most a quarter of the spool, so a full spool still holds
        # several and the sender always has one to work on.
        batch_limit = max(1, min(BATCH_BYTES, spool.limit // 4))
        buf_start = source.pos  # file position of the segmenter's first buffered byte
        disk_state = state

        def cut(segments: list[bytes]) -> None:
            nonlocal state, buf_start, batch_bytes
            for data in segments:
                end_pos = buf_start + len(data)
                cursor = Cursor(str(self.path), *source.identity, end_pos, data[-64:])
                sha = hashlib.sha256(data).hexdigest()
                record = Record(
                    seq=state.next_seq,
                    start=state.offset,
                    end=state.offset + len(data),
                    sha256=sha,
                    prev_sha256=state.prev_sha256,
                    cut_at=_now_iso(),
                    cursor=cursor,
                )
                batch.append((record, data))
                batch_bytes += len(data)
                state = state.advanced(record.seq, record.end, sha, cursor)
                buf_start = end_pos
                if batch_bytes >= batch_limit or len(batch) >= BATCH_SEGMENTS:
                    spool_batch()

        def spool_batch() -> None:
            nonlocal batch, batch_bytes, disk_state
            if not batch:
                return
            self._wait_for_room(spool, sender, batch_bytes)
            path = spool.write(batch)
            save_state(self.folder / "state.json", state)
            disk_state = state
            sender.files.put(path)
            batch, batch_bytes = [], 0

        try:
            while not self.stop.is_set():
                if sender.fatal is not None:
                    raise sender.fatal
                data = source.read(CHUNK)
                if data is ROTATED:
                    cut(seg.flush())
                    source.next_generation()
                    buf_start = 0
                    continue
                assert isinstance(data, bytes)
                if data:
                    cut(seg.feed(data))
                    continue
                if not self.options.follow:
                    cut(seg.flush())
                    break
                cut(seg.due())
                spool_batch()
                self.stop.wait(POLL)
            if self.options.follow:
                # Stopped: complete lines only; a partial last line is read again next time.
                cut(seg.complete())
            spool_batch()
        finally:
            source.close()
        return disk_state

    def _wait_for_room(self, spool: Spool, sender: Sender, size: int) -> None:
        while spool.size + size > spool.limit and spool.size > 0:
            if sender.fatal is not None:
                raise sender.fatal
            if sender.offline is not None:
                raise PushError(
                    3,
                    f"spool full ({spool.size} bytes in {spool.folder}, limit {spool.limit}) "
                    f"and the service is unreachable ({sender.offline}); nothing read is "
                    "lost: push again once the service is back",
                )
            sender.wake.wait(POLL)
            sender.wake.clear()

    def _wait_anchored(self, seq: int) -> int:
        if seq < 0:
            return -1
        deadline = self._clock() + self.options.wait_timeout
        pause = 0.05
        client = self._make_client()
        while True:
            try:
                head = client.get_json(_segment_path(self.stream))
                anchored = int(head.get("anchored_seq", -1))
            except ApiError as e:
                if not _offline(e):
                    raise PushError(3, f"stream {self.stream}: {e}") from None
                anchored = -1
            if anchored >= seq:
                return anchored
            if self._clock() >= deadline:
                raise PushError(
                    3,
                    f"stream {self.stream}: segments up to {seq} were accepted but are not "
                    f"anchored after {self.options.wait_timeout:g} s; they will be "
                    "(see notary logs status)",
                )
            time.sleep(pause)
            pause = min(pause * 1.5, 0.5)
