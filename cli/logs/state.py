"""The pusher's local state of one stream: a small JSON file, replaced atomically.

Folder layout (docs/log-streams.md)::

    <state dir>/<service key>/<stream>/state.json   this file
    <state dir>/<service key>/<stream>/spool/       segments cut but not yet acknowledged
    <state dir>/<service key>/<stream>/lock         held (flock) by the running pusher

``<service key>`` is the first 16 hex digits of SHA-256 of the service URL, so one
machine may push streams of the same name to two services. The state file is written
through a temporary file, fsync and rename (then the folder is fsynced): a crash leaves
the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cli.logs.follower import Cursor

STATE_FORMAT = "notary-logs-state"
STATE_VERSION = 1
ZERO_SHA256 = "0" * 64


class StateError(Exception):
    """A state file that cannot be read or a stream folder already in use."""


def default_state_dir(env: dict[str, str] | None = None) -> Path:
    """``$XDG_STATE_HOME/notary/logs``, by default ``~/.local/state/notary/logs``."""
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".local" / "state"
    return root / "notary" / "logs"


def service_key(url: str) -> str:
    """The folder name of a service: 16 hex digits of SHA-256 of its URL."""
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]


def stream_dir(state_dir: Path, url: str, stream: str) -> Path:
    """The folder of ``stream`` at the service ``url``."""
    return state_dir / service_key(url) / stream


@dataclass(frozen=True)
class StreamState:
    """Where the stream stands locally: the next segment to cut and where to read."""

    url: str
    stream: str
    next_seq: int = 0
    offset: int = 0  # stream offset of the next segment's first byte
    prev_sha256: str = ZERO_SHA256  # content SHA-256 of segment next_seq - 1
    cursor: Cursor | None = None  # read position after segment next_seq - 1
    source: str | None = None  # the file being pushed (absolute path)

    def advanced(self, seq: int, end: int, sha256: str, cursor: Cursor | None) -> StreamState:
        """The state once segment ``seq`` (ending at ``end``) is cut."""
        return replace(self, next_seq=seq + 1, offset=end, prev_sha256=sha256, cursor=cursor)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "version": STATE_VERSION,
            "url": self.url,
            "stream": self.stream,
            "next_seq": self.next_seq,
            "offset": self.offset,
            "prev_sha256": self.prev_sha256,
            "cursor": self.cursor.to_json() if self.cursor else None,
            "source": self.source,
        }


def load_state(path: Path) -> StreamState | None:
    """The state in ``path``; None if there is none. StateError if it is unreadable."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateError(f"cannot read state file {path}: {e.strerror or e}") from None
    try:
        obj = json.loads(raw)
        if obj.get("format") != STATE_FORMAT or obj.get("version") != STATE_VERSION:
            raise ValueError("not a notary-logs-state version 1 file")
        return StreamState(
            url=str(obj["url"]),
            stream=str(obj["stream"]),
            next_seq=int(obj["next_seq"]),
            offset=int(obj["offset"]),
            prev_sha256=str(obj["prev_sha256"]),
            cursor=Cursor.from_json(obj["cursor"]) if obj.get("cursor") else None,
            source=obj.get("source"),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise StateError(f"state file {path} is damaged: {e}") from None


def fsync_dir(path: Path) -> None:
    """fsync a folder, so a rename or unlink in it is durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync of the folder."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def save_state(path: Path, state: StreamState) -> None:
    """Write ``state`` to ``path`` atomically and durably."""
    write_atomically(path, (json.dumps(state.to_json(), indent=1) + "\n").encode())


@contextlib.contextmanager
def locked(folder: Path) -> Iterator[None]:
    """Hold the folder's lock file for the block; StateError if another pusher holds it."""
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StateError(
                f"another notary logs push is running for this stream (lock {folder / 'lock'})"
            ) from None
        yield
    finally:
        os.close(fd)
