"""What the ``notary logs`` test modules share: their fixtures (a live service for the
module, a pusher's environment per test) and runs of ``notary logs`` with the checks
that follow them.

A test module takes the fixtures by assignment, which pytest collects like fixtures
defined in place::

    server = module_server("logs-server")
    env = pusher_env()
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.live_server import LiveServer, clean_env, run_notary, start_server
from tests.cli.logs_helpers import head, wait_for


def logs_env(url: str, trust: str | Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a pusher of ``url``: trusting ``trust``, its own state folder."""
    return clean_env(
        NOTARY_URL=url,
        NOTARY_TRUST=str(trust),
        NOTARY_LOGS_STATE_DIR=str(tmp_path / "state"),
    )


def module_server(prefix: str) -> Any:
    """The fixture ``server``: one live ``notary serve`` for the module, its data in a
    temporary folder named ``prefix``."""

    @pytest.fixture(scope="module", name="server")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
        srv = start_server(tmp_path_factory.mktemp(prefix))
        try:
            yield srv
        finally:
            srv.stop()

    return server


def pusher_env() -> Any:
    """The fixture ``env``: a pusher's environment (``logs_env``) for the module's
    ``server``, with a state folder of the test's own."""

    @pytest.fixture(name="env")
    def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
        return logs_env(server.url, server.trust_path, tmp_path)

    return env


def push(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_notary("logs", "push", *args, env=env, timeout=300)


def verify(env: dict[str, str], stream: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_notary("logs", "verify", "--stream", stream, "--json", *args, env=env)


def report(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
    data: dict[str, object] = json.loads(result.stdout)
    return data


def all_anchored(url: str, stream: str) -> bool:
    """Whether every segment the service accepted on ``stream`` is anchored."""
    h = head(url, stream)
    return h is not None and h["anchored_seq"] == h["head"]["seq"]


def verified(env: dict[str, str], stream: str, file: Path) -> int:
    """The stream's end offset once ``logs verify --against file`` says it is valid
    (checked once every segment is anchored: --follow does not wait for that)."""
    wait_for(lambda: all_anchored(env["NOTARY_URL"], stream), 60, f"{stream} anchored")
    v = verify(env, stream, "--against", str(file))
    assert v.returncode == 0, v.stdout + v.stderr
    end: int = json.loads(v.stdout)["end"]
    return end


def spool_bytes(env: dict[str, str], stream: str) -> int:
    """The bytes in the local spool of ``stream`` (``logs status``; 0 if none)."""
    r = run_notary("logs", "status", "--json", env=env)
    rows = json.loads(r.stdout)["streams"] if r.stdout else []
    row = next((s for s in rows if s["stream"] == stream), None)
    return int(row["local"]["spool_bytes"]) if row and "local" in row else 0
