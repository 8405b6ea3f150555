"""A cluster of real validator (and observer) processes on free 127.0.0.1 ports."""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import ipaddress
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chain.keys import Signer
from chain.node.config import ConsensusTuning, NodeConfig, TlsConfig, render_config
from chain.trust import TrustFile, Validator, make_genesis

REPO = Path(__file__).resolve().parents[3]
CHAIN_ID = "test.chain.example"


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago."""
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def make_tls(root: Path) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1 signed by it."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(1)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(2)
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = root / "ca.crt", root / "node.crt", root / "node.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


@dataclass
class NodeProc:
    """One node process of the cluster."""

    name: str
    config: Path
    url: str
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start ``notary node run --config``."""
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "node", "run", "--config", str(self.config)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        out.close()

    def kill9(self) -> None:
        """SIGKILL, no chance to clean up."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM (graceful), SIGKILL if it hangs."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    def tail(self, n: int = 30) -> str:
        """The last lines of the node's log."""
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""


@dataclass
class Cluster:
    """n validators (+ optional observer) as processes."""

    root: Path
    trust: TrustFile
    trust_path: Path
    validators: list[NodeProc]
    observer: NodeProc | None
    ca: Path | None = None

    @property
    def nodes(self) -> list[NodeProc]:
        """Validators then the observer."""
        return self.validators + ([self.observer] if self.observer else [])

    def urls(self) -> list[str]:
        """Client API URLs of the validators."""
        return [v.url for v in self.validators]

    async def status(self, node: NodeProc) -> dict[str, Any] | None:
        """The node's /v1/status, or None if it does not answer."""
        ssl_ctx = ssl.create_default_context(cafile=str(self.ca)) if self.ca else True
        try:
            async with (
                aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ssl_ctx)) as session,
                session.get(node.url + "/v1/status", timeout=aiohttp.ClientTimeout(total=2)) as r,
            ):
                if r.status != 200:
                    return None
                result: dict[str, Any] = await r.json()
                return result
        except (aiohttp.ClientError, TimeoutError, OSError):
            return None

    async def wait_up(self, nodes: list[NodeProc], deadline_s: float = 30) -> None:
        """Poll until every node answers /v1/status."""
        await wait_for(lambda: self._all_up(nodes), deadline_s, lambda: self.describe(nodes))

    async def _all_up(self, nodes: list[NodeProc]) -> bool:
        for node in nodes:
            assert node.proc is not None
            if node.proc.poll() is not None:
                raise AssertionError(f"{node.name} exited:\n{node.tail()}")
        return all([await self.status(n) is not None for n in nodes])

    def describe(self, nodes: list[NodeProc] | None = None) -> str:
        """Logs of the nodes (for failure messages)."""
        return "\n".join(f"--- {n.name}\n{n.tail()}" for n in nodes or self.nodes)


async def wait_for(
    condition: Callable[[], Awaitable[bool]],
    deadline_s: float,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """Poll ``condition`` until true; fail with ``describe()`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while True:
        if await condition():
            return
        if time.monotonic() > end:
            raise AssertionError(f"condition not met within {deadline_s}s\n{describe()}")
        await asyncio.sleep(0.05)


def build_cluster(root: Path, n: int = 4, *, observer: bool = True, tls: bool = False) -> Cluster:
    """Keys, trust file and configs for ``n`` validators (+ observer ``regulator``)."""
    root.mkdir(parents=True, exist_ok=True)
    ports = free_ports(n + 1)
    scheme = "https" if tls else "http"
    tls_config = TlsConfig()
    ca = None
    if tls:
        ca, cert, key = make_tls(root)
        tls_config = TlsConfig(cert=cert, key=key, ca=ca)
    signers = [
        Signer.from_seed(f"v{i}", hashlib.sha256(f"node-test/{i}".encode()).digest())
        for i in range(n)
    ]
    urls = [f"{scheme}://127.0.0.1:{p}" for p in ports]
    trust = make_genesis(
        CHAIN_ID, [Validator(s.name, s.public_key, urls[i]) for i, s in enumerate(signers)]
    )
    trust_path = root / "trust.json"
    trust.save(trust_path)
    observer_peers = {"regulator": urls[n]} if observer else {}
    tuning = ConsensusTuning(batch_entries=2000, batch_delay_ms=20, view_timeout_ms=600)
    procs = []
    for i, s in enumerate(signers):
        key_path = root / f"{s.name}.key"
        s.save(key_path)
        cfg = NodeConfig(
            name=s.name,
            role="validator",
            trust_file=trust_path,
            data_dir=root / s.name,
            key_file=key_path,
            port=ports[i],
            tls=tls_config,
            peers=observer_peers,
            consensus=tuning,
        )
        path = root / f"{s.name}.toml"
        path.write_text(render_config(cfg))
        procs.append(NodeProc(s.name, path, urls[i], root / f"{s.name}.log"))
    obs = None
    if observer:
        cfg = NodeConfig(
            name="regulator",
            role="observer",
            trust_file=trust_path,
            data_dir=root / "regulator",
            port=ports[n],
            tls=tls_config,
            consensus=tuning,
        )
        path = root / "regulator.toml"
        path.write_text(render_config(cfg))
        obs = NodeProc("regulator", path, urls[n], root / "regulator.log")
    return Cluster(root, trust, trust_path, procs, obs, ca)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Four validators and an observer, running."""
    c = build_cluster(tmp_path_factory.mktemp("cluster"))
    for node in c.nodes:
        node.start()
    try:
        asyncio.run(c.wait_up(c.nodes))
        yield c
    finally:
        for node in c.nodes:
            node.stop()
