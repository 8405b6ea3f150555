"""A real ``notary serve`` process for CLI tests, and a way to run ``notary`` as a user does.

``start_server(folder)`` migrates a fresh SQLite index, starts the embedded service on a
free port (port 0; the URL is read from the line the service announces), waits until
``/readyz`` answers 200, and returns a :class:`LiveServer`; ``stop()`` ends it.
``run_notary(args, env)`` runs the installed command in a subprocess.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

_LISTENING = re.compile(r"notary API listening on (\S+)")


def notary_argv(*args: str) -> list[str]:
    """The command line of ``notary ARGS`` in this virtual environment."""
    return [sys.executable, "-m", "cli.main", *args]


def clean_env(**extra: str) -> dict[str, str]:
    """The process environment without any NOTARY_* / XDG_* variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("NOTARY_", "XDG_CONFIG", "XDG_STATE"))
    }
    env.update(extra)
    return env


def run_notary(
    *args: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``notary ARGS`` to completion; stdout and stderr captured as text."""
    return subprocess.run(
        notary_argv(*args), capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd
    )


@dataclass
class LiveServer:
    url: str
    data_dir: Path
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def trust_path(self) -> Path:
        return self.data_dir / "chain" / "trust.json"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, deadline: float) -> None:
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"notary serve exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url}/readyz not ready in time: {log.read_text()[-2000:]}")


def start_server(folder: Path, timeout: float = 60) -> LiveServer:
    """Start ``notary serve`` (embedded default) with its data under ``folder``."""
    data_dir = folder / "var"
    env = clean_env(
        NOTARY_DATA_DIR=str(data_dir),
        NOTARY_SERVER_PORT="0",
        NOTARY_STORAGE_SEGMENT_SIZE=str(64 * 1024),
    )
    migrate = subprocess.run(
        notary_argv("db", "upgrade"), capture_output=True, text=True, env=env, timeout=120
    )
    if migrate.returncode != 0:
        raise RuntimeError(f"notary db upgrade failed: {migrate.stderr}")
    log = folder / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            notary_argv("serve"), stdout=out, stderr=subprocess.STDOUT, env=env
        )
    deadline = time.monotonic() + timeout
    url = None
    while url is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"notary serve did not start: {log.read_text()[-2000:]}")
        match = _LISTENING.search(log.read_text(errors="replace"))
        if match:
            url = match.group(1)
        else:
            time.sleep(0.05)
    server = LiveServer(url=url, data_dir=data_dir, process=process, log=log)
    try:
        _wait_ready(url, process, log, deadline)
    except BaseException:
        server.stop()
        raise
    return server
