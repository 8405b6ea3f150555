"""Worker threads for CPU-heavy work (hashing, erasure coding) and allocator tuning.

hashlib releases the GIL while hashing more than 2 KiB, so hashing in
threads uses every core. pyeclib does **not** release it (its C extension
never calls PyEval_SaveThread; measured: a pure-Python thread runs 7 times
slower while another thread encodes), so an encode runs alone for its few
milliseconds per 8 MiB segment; it still goes to a worker so that the
hashing around it overlaps. Hashing (3.5 passes over every byte on a put:
document, segment and fragments) costs far more than encoding, so this is
a few percent. The pool is separate from the event loop's default executor
so a long hash never queues behind (or in front of) aiofiles' short file
operations.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

_T = TypeVar("_T")
_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_tuned = False

# glibc mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def cpu_pool() -> ThreadPoolExecutor:
    """The process-wide pool for CPU-heavy storage work (created on first use)."""
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="storage-cpu"
            )
        return _pool


async def run_cpu(fn: Callable[..., _T], *args: object) -> _T:
    """Run ``fn(*args)`` in the CPU pool and await its result."""
    return await asyncio.get_running_loop().run_in_executor(cpu_pool(), fn, *args)


# Below this many bytes, hashing and erasure coding take a few tens of microseconds
# (measured: 13 us to encode and hash a 4 KiB segment, 105 us at 64 KiB): less than a
# trip to a worker and back, which also costs the event loop two turns.
INLINE_CPU_BYTES = 16 * 1024


async def run_cpu_on(nbytes: int, fn: Callable[..., _T], *args: object) -> _T:
    """``fn(*args)``, work on ``nbytes`` bytes: right here if that is below
    INLINE_CPU_BYTES, otherwise in the CPU pool."""
    if nbytes < INLINE_CPU_BYTES:
        return fn(*args)
    return await run_cpu(fn, *args)


def tune_allocator() -> bool:
    """Keep multi-MiB buffers in glibc's heap instead of fresh mmap()s; True if applied.

    Each segment allocates a few buffers of several MiB. By default glibc
    serves each with a new mmap() whose pages fault in one by one and are
    returned on free, which made encoding 3 to 4 times slower here. Raising
    the mmap threshold to 64 MiB (and the trim threshold to 64 MiB) reuses
    heap memory instead. Buffers allocated in one thread and freed in another
    also strand memory in glibc's per-thread arenas (peak RSS of a read went
    from ~100 to ~190 MiB), so a single arena is used: the allocations are
    few and large, so the shared lock costs nothing measurable. Call it before
    worker threads start. Process-wide, idempotent; a no-op off glibc.
    """
    global _tuned
    with _lock:
        if _tuned:
            return True
        name = ctypes.util.find_library("c")
        if name is None:
            return False
        try:
            libc = ctypes.CDLL(name)
            mallopt = libc.mallopt
        except (OSError, AttributeError):
            return False
        ok = bool(mallopt(_M_ARENA_MAX, 1))
        ok = bool(mallopt(_M_MMAP_THRESHOLD, 64 * 1024 * 1024)) and ok
        ok = bool(mallopt(_M_TRIM_THRESHOLD, 64 * 1024 * 1024)) and ok
        _tuned = ok
        return ok
