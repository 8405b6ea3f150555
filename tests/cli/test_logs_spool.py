"""``notary logs push`` while the service is down: segments spool, and are sent in order
when it is back; a full spool is a clear error that loses nothing. The service is a
real ``notary serve`` on a fixed port, stopped and started again for real."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.live_server import LiveServer, notary_argv, run_notary
from tests.cli.logs_cli import logs_env, spool_bytes, verified
from tests.cli.logs_helpers import (
    append,
    free_port,
    head_end,
    lines,
    one_line,
    serve_at,
    wait_for,
)


class Service:
    """The module's service, which tests may stop and start at the same address."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = free_port()
        self.server: LiveServer | None = serve_at(folder, self.port)
        self.url = self.server.url
        self.trust = str(self.server.trust_path)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def start(self) -> None:
        if self.server is None:
            self.server = serve_at(self.folder, self.port)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    svc = Service(tmp_path_factory.mktemp("spool-server"))
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def env(service: Service, tmp_path: Path) -> Iterator[dict[str, str]]:
    service.start()
    yield logs_env(service.url, service.trust, tmp_path)
    service.start()


def test_service_down_then_back_spool_drains_in_order(
    service: Service, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "oms.log"
    log.write_bytes(lines(0, 200))
    proc = subprocess.Popen(
        notary_argv(
            "logs",
            "push",
            str(log),
            "--stream",
            "oms",
            "--follow",
            "--segment-bytes",
            "4KiB",
            "--segment-seconds",
            "0.2",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: head_end(service.url, "oms") == log.stat().st_size, 60, "first lines")
        service.stop()
        append(log, lines(200, 400))  # read while the service is down: spooled
        wait_for(lambda: spool_bytes(env, "oms") > 20_000, 60, "segments in the spool")
        assert proc.poll() is None
        service.start()
        append(log, lines(600, 100))  # and more once it is back
        wait_for(lambda: head_end(service.url, "oms") == log.stat().st_size, 120, "drained")
        wait_for(lambda: spool_bytes(env, "oms") == 0, 30, "an empty spool")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # --follow does not wait for anchoring: verify once every accepted segment is anchored.
    assert verified(env, "oms", log) == log.stat().st_size


def test_full_spool_is_a_clear_error_and_loses_nothing(
    service: Service, env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "fix.log"
    log.write_bytes(lines(0, 3000))  # about 300 KB
    service.stop()
    args = ["logs", "push", str(log), "--stream", "fix", "--segment-bytes", "4KiB"]
    r = run_notary(*args, "--spool-bytes", "64KiB", env=env)
    assert r.returncode == 3, r.stderr
    line = one_line(r.stderr)
    assert "spool full" in line and "nothing read is lost" in line
    spooled = spool_bytes(env, "fix")
    assert 0 < spooled <= 64 * 1024
    # Back up: the same command sends the spool, then reads on where it stopped.
    service.start()
    r = run_notary(*args, "--spool-bytes", "64KiB", env=env)
    assert r.returncode == 0, r.stderr
    assert verified(env, "fix", log) == log.stat().st_size
