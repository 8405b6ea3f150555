"""Fixtures for the S3 backend's tests against a real S3 server (Ceph RGW).

One Ceph cluster is started per test session by ``scripts/s3-test-cluster.sh``
on free ports, and always stopped at the end: six plain-HTTP gateways (six
independent S3 nodes) and a seventh serving HTTPS with a self-signed
certificate. Without the Ceph packages, or when the cluster cannot start,
every test using these fixtures is skipped with the reason (shown by
``pytest -ra``); set ``S3_TESTS_REQUIRED=1`` (CI with the packages installed)
to fail instead.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from storage.nodes.s3 import S3Node

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "s3-test-cluster.sh"
N_GATEWAYS = 6  # plain http, gateways 1..6
TLS_GATEWAY = 7  # https, certificate in S3Cluster.ca_file
REQUIRED_BINARIES = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "ceph", "rados", "curl")
STARTUP_TIMEOUT = 180.0


@dataclass(frozen=True)
class Gateway:
    """One RADOS Gateway: an independent S3 node."""

    index: int  # 1-based, as the script counts
    endpoint: str
    access_key: str
    secret_key: str = field(repr=False)
    pid_file: Path

    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None


class S3Cluster:
    """The running test cluster: its gateways and the means to fail them for real."""

    def __init__(self, directory: Path, gateways: list[Gateway], startup_seconds: float) -> None:
        self.directory = directory
        self.ca_file = directory / "tls" / "cert.pem"
        self.gateways = gateways
        self.startup_seconds = startup_seconds
        self._killed: set[int] = set()
        self._frozen: set[int] = set()

    def gateway(self, index: int) -> Gateway:
        return self.gateways[index - 1]

    def _script(self, *args: str, timeout: float = 60.0) -> None:
        subprocess.run(
            [str(SCRIPT), *args],
            check=True,
            capture_output=True,
            timeout=timeout,
        )

    def kill(self, index: int) -> None:
        """SIGKILL gateway ``index`` and wait until its process is gone."""
        self._killed.add(index)
        self._script("kill-gateway", str(self.directory), str(index))

    def restart(self, index: int) -> None:
        """Start gateway ``index`` again (same port, same data)."""
        self._script("restart-gateway", str(self.directory), str(index))
        self._killed.discard(index)

    def freeze(self, index: int) -> None:
        """SIGSTOP the gateway: it accepts connections but never answers."""
        pid = self.gateway(index).pid()
        assert pid is not None, f"gateway {index} is not running"
        self._frozen.add(index)
        os.kill(pid, signal.SIGSTOP)

    def thaw(self, index: int) -> None:
        pid = self.gateway(index).pid()
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
        self._frozen.discard(index)

    def heal(self) -> None:
        """Undo every failure a test injected, so the next test sees every node live."""
        for index in sorted(self._frozen):
            self.thaw(index)
        restarts = [
            subprocess.Popen(  # in parallel: each waits ~0.5 s for its gateway
                [str(SCRIPT), "restart-gateway", str(self.directory), str(index)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            for index in sorted(self._killed)
        ]
        for proc in restarts:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, f"restarting a gateway failed: {err.decode()}"
        self._killed.clear()

    def raw_client(self, index: int, *, secret_key: str | None = None) -> Any:
        """A plain boto3 client on gateway ``index``, to inspect or damage what a node wrote."""
        gw = self.gateway(index)
        return boto3.session.Session().client(
            "s3",
            endpoint_url=gw.endpoint,
            aws_access_key_id=gw.access_key,
            aws_secret_access_key=secret_key or gw.secret_key,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                retries={"mode": "standard", "total_max_attempts": 2},
                connect_timeout=2,
                read_timeout=10,
            ),
        )


# What the session's cluster cost, for the terminal summary.
_STATS: dict[str, float] = {}


def _cluster_rss_mib(directory: Path) -> float:
    import psutil

    total = 0
    for pid_file in directory.glob("run/*.pid"):
        try:
            total += psutil.Process(int(pid_file.read_text())).memory_info().rss
        except (OSError, ValueError, psutil.Error):
            continue
    return total / 2**20


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _STATS:
        terminalreporter.write_line(
            f"S3 test cluster: {_STATS['gateways']:.0f} gateways ready in "
            f"{_STATS['startup_s']:.1f} s, {_STATS['rss_mib']:.0f} MiB RSS at the end"
        )


def _free_ports(n: int) -> list[int]:
    with ExitStack() as stack:
        socks = []
        for _ in range(n):
            s = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]


def _self_signed_cert(directory: Path) -> dict[str, str]:
    """A certificate for 127.0.0.1 (and its key) for the TLS gateway; env for the script."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "in-cert.pem", directory / "in-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"S3_TLS_CERT": str(cert_path), "S3_TLS_KEY": str(key_path)}


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("S3_TESTS_REQUIRED") == "1":
        pytest.fail(f"S3 test cluster required but unavailable: {reason}", pytrace=False)
    pytest.skip(f"S3 test cluster unavailable: {reason}")


def _parse_gateways(text: str) -> list[Gateway]:
    gateways = []
    for line in text.splitlines():
        index, endpoint, access, secret, pid_file = line.split("\t")
        gateways.append(Gateway(int(index), endpoint, access, secret, Path(pid_file)))
    return gateways


@pytest.fixture(scope="session")
def s3_session_cluster() -> Iterator[S3Cluster]:
    """Start the Ceph cluster once per session; always stop it at the end."""
    missing = [b for b in REQUIRED_BINARIES if shutil.which(b) is None]
    if missing:
        _skip_or_fail(
            f"missing {', '.join(missing)} (install with scripts/install-s3-deps.sh: "
            "Debian packages ceph-mon ceph-osd radosgw)"
        )
    # A short path: Ceph's admin sockets are unix sockets (108-byte path limit).
    directory = Path(tempfile.mkdtemp(prefix="s3c-"))
    ports = _free_ports(2 + N_GATEWAYS)
    port_specs = [str(p) for p in ports[1:-1]] + [f"tls:{ports[-1]}"]
    env = {**os.environ, **_self_signed_cert(directory)}
    started = time.monotonic()
    ok = False
    try:
        try:
            proc = subprocess.run(
                [str(SCRIPT), "start", str(directory), str(ports[0]), *port_specs],
                env=env,
                capture_output=True,
                text=True,
                timeout=STARTUP_TIMEOUT,
            )
        except subprocess.TimeoutExpired:
            _skip_or_fail(f"startup took more than {STARTUP_TIMEOUT:.0f}s (logs in {directory})")
        if proc.returncode != 0:
            tail = " | ".join(proc.stderr.strip().splitlines()[-6:])
            _skip_or_fail(f"scripts/s3-test-cluster.sh failed: {tail} (logs in {directory})")
        cluster = S3Cluster(directory, _parse_gateways(proc.stdout), time.monotonic() - started)
        ok = True
        yield cluster
        _STATS.update(
            gateways=len(cluster.gateways),
            startup_s=cluster.startup_seconds,
            rss_mib=_cluster_rss_mib(directory),
        )
    finally:
        subprocess.run(
            [str(SCRIPT), "stop", str(directory)], capture_output=True, timeout=60, check=False
        )
        # Keep the logs when startup failed (the skip reason names the folder).
        if ok:
            shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def s3_cluster(s3_session_cluster: S3Cluster) -> Iterator[S3Cluster]:
    """The session's cluster; whatever gateways the test killed or froze come back after it."""
    yield s3_session_cluster
    s3_session_cluster.heal()


_bucket_counter = itertools.count()


@pytest.fixture
def bucket_name(request: pytest.FixtureRequest) -> str:
    """A fresh, valid bucket name for this test (S3: 3-63 chars, [a-z0-9-])."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{stem}-{os.getpid()}-{next(_bucket_counter)}"


MakeNode = Callable[..., Awaitable[S3Node]]


@pytest.fixture
async def make_node(s3_cluster: S3Cluster, bucket_name: str) -> AsyncIterator[MakeNode]:
    """Factory: ``await make_node(gateway_index, **S3Node kwargs)`` -> a node whose
    bucket exists (``bucket_name`` unless ``bucket=`` is given); closed after the test."""
    nodes: list[S3Node] = []

    async def make(
        index: int, *, bucket: str | None = None, ensure: bool = True, **kwargs: Any
    ) -> S3Node:
        gw = s3_cluster.gateway(index)
        options: dict[str, Any] = {
            "access_key": gw.access_key,
            "secret_key": gw.secret_key,
            "connect_timeout": 2.0,
            "read_timeout": 10.0,
            "max_attempts": 2,
        }
        options.update(kwargs)
        object_lock = options.pop("bucket_object_lock", None)
        node = S3Node(
            options.pop("name", f"s3-{index}"),
            endpoint_url=gw.endpoint,
            bucket=bucket or bucket_name,
            **options,
        )
        nodes.append(node)
        if ensure:
            await node.ensure_bucket(object_lock=object_lock)
        return node

    yield make
    for node in nodes:
        await node.close()
