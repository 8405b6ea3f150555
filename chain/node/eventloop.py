"""Running a long-lived server's event loop: uvloop where it is installed, asyncio's own
loop otherwise.

uvloop (libuv, in C) does the loop's bookkeeping, socket reads and writes and thread
wake-ups for a fraction of the interpreter time asyncio's pure-Python selector loop
spends on them; for the service under small uploads that was about a tenth of its CPU.
Behaviour is the same (it implements asyncio's loop API); the tests run on both loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

_T = TypeVar("_T")


def run(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on uvloop if it can be imported."""
    try:
        import uvloop
    except ImportError:  # not on this platform (e.g. Windows)
        return asyncio.run(main)
    return uvloop.run(main)
