"""Reading a log file from a saved cursor, and following it like ``tail -F``.

A :class:`Source` reads one path. The bytes it returns belong to one **generation** of
the file at a time (one inode, from its creation to its rotation). When a generation
ends, ``read`` returns :data:`ROTATED` once, after every byte of it was returned; the
caller closes its segment there and calls :meth:`Source.next_generation`.

* Rotation by rename (``mv app.log app.log.1``; the writer reopens ``app.log``): the
  open descriptor still reads the old inode; once it is at its end and the path names
  another file, the generation is over.
* Rotation by truncation (``copytruncate``: copy to ``app.log.1``, truncate ``app.log``):
  the file is found shorter than what was read, or its bytes before the read position
  are no longer the ones read (truncated and already regrown). The bytes written after
  our position and before the truncation are in the copy: a sibling file whose bytes
  just before our position equal the last bytes we read (up to 64) is taken as the copy
  and read from our position to its end. Without such a copy, the remainder is
  reported lost (``warn``).
* Restart: a :class:`Cursor` (path, device, inode, position, the last bytes before the
  position) says where reading stopped; the renamed file is found again by its inode
  in the same folder, a truncated one by its copy, as above.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

TAIL = 64


class _Rotated:
    def __repr__(self) -> str:
        return "ROTATED"


ROTATED = _Rotated()


@dataclass(frozen=True)
class Cursor:
    """Where reading stopped: in the generation (``dev``, ``ino``) of ``path``, at ``pos``."""

    path: str
    dev: int
    ino: int
    pos: int
    tail: bytes  # the (up to TAIL) bytes just before pos

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "dev": self.dev,
            "ino": self.ino,
            "pos": self.pos,
            "tail": self.tail.hex(),
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Cursor:
        return cls(
            str(obj["path"]),
            int(obj["dev"]),
            int(obj["ino"]),
            int(obj["pos"]),
            bytes.fromhex(obj["tail"]),
        )


def _identity(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


class Source:
    """One log file, read from a cursor and (with ``follow``) across rotations."""

    def __init__(
        self,
        path: Path,
        cursor: Cursor | None,
        *,
        follow: bool,
        warn: Callable[[str], None],
    ) -> None:
        self.path = path.absolute()
        self.follow = follow
        self._warn = warn
        self._file: BinaryIO | None = None
        # True while reading a generation that is no longer the file at the path (a
        # renamed file or a copy): its end is the end of the generation.
        self._old_generation = False
        # The current generation: identity, read position, last bytes read.
        self.identity: tuple[int, int] = (0, 0)
        self.pos = 0
        self._tail = b""
        if cursor is not None and Path(cursor.path) == self.path:
            self._resume(cursor)

    # -- opening ---------------------------------------------------------------------

    def _resume(self, c: Cursor) -> None:
        self.identity, self.pos, self._tail = (c.dev, c.ino), c.pos, c.tail
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        if st is not None and _identity(st) == self.identity:
            f = self.path.open("rb")
            if self._intact(f):
                f.seek(self.pos)
                self._file = f
                return
            f.close()
            self._recover_copy()
            return
        renamed = self._sibling(lambda e, s: _identity(s) == self.identity)
        if renamed is not None:
            f = renamed.open("rb")
            if self._intact(f):
                f.seek(self.pos)
                self._file = f
                self._old_generation = True  # read it to its end, then the path's file
                return
            f.close()
        self._recover_copy()

    def _intact(self, f: BinaryIO) -> bool:
        """The bytes before our position are still the ones we read."""
        size = os.fstat(f.fileno()).st_size
        if size < self.pos:
            return False
        if not self._tail:
            return True
        return os.pread(f.fileno(), len(self._tail), self.pos - len(self._tail)) == self._tail

    def _sibling(self, match: Callable[[os.DirEntry[str], os.stat_result], bool]) -> Path | None:
        best: tuple[float, Path] | None = None
        try:
            entries = list(os.scandir(self.path.parent))
        except OSError:
            return None
        for e in entries:
            if e.name == self.path.name:
                continue
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            newer = best is None or st.st_mtime > best[0]
            if stat.S_ISREG(st.st_mode) and newer and match(e, st):
                best = (st.st_mtime, Path(e.path))
        return best[1] if best is not None else None

    def _recover_copy(self) -> None:
        """The generation was truncated (or is gone): read its rest from a copy, if any."""
        if self.pos > 0 and self._tail:

            def is_copy(e: os.DirEntry[str], st: os.stat_result) -> bool:
                if not e.name.startswith(self.path.name) or st.st_size < self.pos:
                    return False
                try:
                    with Path(e.path).open("rb") as f:
                        before = os.pread(f.fileno(), len(self._tail), self.pos - len(self._tail))
                except OSError:
                    return False
                return before == self._tail

            copy = self._sibling(is_copy)
            if copy is not None:
                f = copy.open("rb")
                f.seek(self.pos)
                self._file = f
                self._old_generation = True
                return
        self._warn(
            f"{self.path} was rotated or truncated and no rotated copy holds its bytes after "
            f"offset {self.pos}: continuing with the current file"
        )
        self._file = None
        self._old_generation = True  # the generation is over: next read says ROTATED

    def _open_current(self) -> bool:
        try:
            f = self.path.open("rb")
        except FileNotFoundError:
            return False
        self._file = f
        self.identity = _identity(os.fstat(f.fileno()))
        self.pos, self._tail = 0, b""
        return True

    # -- reading ---------------------------------------------------------------------

    def read(self, size: int) -> bytes | _Rotated:
        """Up to ``size`` bytes of the current generation; ``b""`` when there is nothing
        new now; ROTATED once when the generation is over (see the module docstring)."""
        if self._file is None:
            if self._old_generation:
                return ROTATED
            if not self._open_current():
                return b""
        f = self._file
        assert f is not None
        if not self._old_generation and self.pos and not self._intact(f):
            self._close()
            self._recover_copy()
            return self.read(size)
        data = f.read(size)
        if data:
            self.pos += len(data)
            self._tail = (self._tail + data)[-TAIL:]
            return data
        if self._old_generation:
            return ROTATED
        if not self.follow:
            return b""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return b""  # renamed, not recreated yet: the old file may still grow
        if _identity(st) != _identity(os.fstat(f.fileno())):
            return ROTATED
        return b""

    def next_generation(self) -> None:
        """After ROTATED: continue with the file now at the path, from its start."""
        self._close()
        self._old_generation = False
        self.identity, self.pos, self._tail = (0, 0), 0, b""

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Close the open file."""
        self._close()
