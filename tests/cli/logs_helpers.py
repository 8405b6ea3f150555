"""Helpers of the ``notary logs`` tests: log writers, waiting on conditions, stream heads,
and a ``notary serve`` on a fixed port (so it can be stopped and started again at the
same address while a pusher keeps running)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.cli.live_server import LiveServer, _wait_ready, clean_env, notary_argv


def wait_for(cond: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll ``cond`` until it returns something truthy; fail naming ``what`` at the deadline."""
    deadline = time.monotonic() + timeout
    pause = 0.02
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(pause)
        pause = min(pause * 1.5, 0.25)


def lines(start: int, count: int, tag: str = "") -> bytes:
    """``count`` distinct log lines of about 100 bytes."""
    return b"".join(
        f"2026-01-02T03:04:05.{i % 1000:03d}Z {tag}order={i} side=BUY qty={i % 500} "
        f"sym=ACME px=12.{i % 100:02d} acct=A{i % 97:03d}\n".encode()
        for i in range(start, start + count)
    )


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


def head(url: str, stream: str) -> dict[str, Any] | None:
    """The stream's head at the service, or None (unknown stream, or unreachable)."""
    try:
        with urllib.request.urlopen(f"{url}/v1/streams/{stream}", timeout=5) as r:
            body: dict[str, Any] = json.loads(r.read())
            return body
    except (urllib.error.URLError, OSError):
        return None


def head_end(url: str, stream: str) -> int:
    h = head(url, stream)
    return int(h["head"]["end"]) if h else -1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def serve_at(
    folder: Path, port: int, timeout: float = 60, segment_size: int | None = 64 * 1024
) -> LiveServer:
    """``notary serve`` with its data under ``folder/var`` on 127.0.0.1:``port``
    (migrating first); returns once /readyz answers. ``segment_size``: the storage
    segment size (None: the service's default)."""
    data_dir = folder / "var"
    env = clean_env(NOTARY_DATA_DIR=str(data_dir), NOTARY_SERVER_PORT=str(port))
    if segment_size is not None:
        env["NOTARY_STORAGE_SEGMENT_SIZE"] = str(segment_size)
    migrate = subprocess.run(
        notary_argv("db", "upgrade"), capture_output=True, text=True, env=env, timeout=120
    )
    assert migrate.returncode == 0, migrate.stderr
    log = folder / "serve.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            notary_argv("serve"), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url=url, data_dir=data_dir, process=process, log=log)
    try:
        _wait_ready(url, process, log, time.monotonic() + timeout)
    except BaseException:
        server.stop()
        raise
    return server


def one_line(stderr: str) -> str:
    """The single stderr line of a failed command (asserting there is exactly one)."""
    got = [line for line in stderr.splitlines() if line.strip()]
    assert len(got) == 1, stderr
    assert got[0].startswith("notary: "), got[0]
    return got[0]
