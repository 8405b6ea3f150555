"""The client against a scripted HTTP(S) server on a real socket: what it sends (the bearer
token) and how it treats what a broken or hostile service answers (problem details, a
proxy's 502 page, wrong bytes, a body cut short, an untrusted TLS certificate)."""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.cli.live_server import clean_env, run_notary

DOC_ID = "ab" * 16
CONTENT = b"the original filing\n" * 1000

Route = Callable[[BaseHTTPRequestHandler], None]


def send(
    handler: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    ctype: str = "application/json",
    length: int | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", ctype)
    handler.send_header("Content-Length", str(len(body) if length is None else length))
    handler.end_headers()
    handler.wfile.write(body)


def problem(handler: BaseHTTPRequestHandler, status: int, code: str, detail: str) -> None:
    body = {"type": "about:blank", "title": code, "status": status, "code": code, "detail": detail}
    send(handler, status, json.dumps(body).encode(), "application/problem+json")


class Scripted:
    """A threaded HTTP server answering GET paths from ``routes``; records request headers."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self.routes: dict[str, Route] = {}
        self.seen: list[dict[str, str]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.seen.append(dict(self.headers.items()))
                route = outer.routes.get(self.path.split("?")[0])
                if route is None:
                    problem(self, 404, "not_found", f"no route {self.path}")
                else:
                    route(self)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def scripted() -> Iterator[Scripted]:
    server = Scripted()
    yield server
    server.close()


def env_for(url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return clean_env(
        NOTARY_URL=url,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        **extra,
    )


def only_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notary: "), stderr
    return lines[0]


def document_meta(sha256: str, size: int) -> Route:
    meta = {"id": DOC_ID, "kind": "filing", "status": "anchored", "version": 1}
    body = json.dumps({**meta, "sha256": sha256, "size": size}).encode()
    return lambda h: send(h, 200, body)


def test_token_is_sent_as_bearer_and_problem_details_exit_3(
    scripted: Scripted, tmp_path: Path
) -> None:
    scripted.routes[f"/v1/documents/{DOC_ID}"] = lambda h: problem(
        h, 503, "storage_unavailable", "2 of 6 storage nodes reachable"
    )
    out = run_notary("status", DOC_ID, env=env_for(scripted.url, tmp_path, NOTARY_TOKEN="tok-123"))
    assert out.returncode == 3
    assert only_line(out.stderr) == "notary: 2 of 6 storage nodes reachable (storage_unavailable)"
    assert scripted.seen[-1]["Authorization"] == "Bearer tok-123"
    assert "tok-123" not in out.stdout + out.stderr

    plain = run_notary("status", DOC_ID, env=env_for(scripted.url, tmp_path))
    assert "Authorization" not in scripted.seen[-1] and plain.returncode == 3


def test_a_proxy_error_page_is_a_service_error(scripted: Scripted, tmp_path: Path) -> None:
    scripted.routes[f"/v1/documents/{DOC_ID}"] = lambda h: send(
        h, 502, b"<html><body>Bad Gateway</body></html>", "text/html"
    )
    out = run_notary("status", DOC_ID, env=env_for(scripted.url, tmp_path))
    assert out.returncode == 3
    line = only_line(out.stderr)
    assert "HTTP 502" in line and "(http_502)" in line


def test_get_refuses_bytes_that_do_not_match_the_digest(scripted: Scripted, tmp_path: Path) -> None:
    flipped = bytearray(CONTENT)
    flipped[1234] ^= 0x01
    good = hashlib.sha256(CONTENT).hexdigest()
    scripted.routes[f"/v1/documents/{DOC_ID}"] = document_meta(good, len(CONTENT))
    scripted.routes[f"/v1/documents/{DOC_ID}/content"] = lambda h: send(
        h, 200, bytes(flipped), "application/octet-stream"
    )
    target = tmp_path / "out.bin"
    out = run_notary("get", DOC_ID, "-o", str(target), env=env_for(scripted.url, tmp_path))
    assert out.returncode == 3
    assert "(digest_mismatch)" in only_line(out.stderr)
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".part"] == []

    scripted.routes[f"/v1/documents/{DOC_ID}/content"] = lambda h: send(
        h, 200, CONTENT, "application/octet-stream"
    )
    ok = run_notary("get", DOC_ID, "-o", str(target), env=env_for(scripted.url, tmp_path))
    assert ok.returncode == 0, ok.stderr
    assert target.read_bytes() == CONTENT


def test_get_of_a_body_cut_short_writes_nothing(scripted: Scripted, tmp_path: Path) -> None:
    scripted.routes[f"/v1/documents/{DOC_ID}"] = document_meta(
        hashlib.sha256(CONTENT).hexdigest(), len(CONTENT)
    )

    def cut(h: BaseHTTPRequestHandler) -> None:
        h.close_connection = True
        send(h, 200, CONTENT[:5000], "application/octet-stream", length=len(CONTENT))

    scripted.routes[f"/v1/documents/{DOC_ID}/content"] = cut
    target = tmp_path / "out.bin"
    out = run_notary("get", DOC_ID, "-o", str(target), env=env_for(scripted.url, tmp_path))
    assert out.returncode == 3
    assert "ended early" in only_line(out.stderr)
    assert not target.exists()


def _certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca.pem, cert, key)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "notary test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def test_tls_with_the_configured_ca_and_without_it(tmp_path: Path) -> None:
    ca, cert, key = _certificates(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    server = Scripted(tls=context)
    try:
        server.routes[f"/v1/documents/{DOC_ID}"] = document_meta("00" * 32, 1)
        trusted = run_notary(
            "status", DOC_ID, "--json", env=env_for(server.url, tmp_path, NOTARY_CA=str(ca))
        )
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout)["id"] == DOC_ID

        untrusted = run_notary("status", DOC_ID, env=env_for(server.url, tmp_path))
        assert untrusted.returncode == 3
        assert "(tls_error)" in only_line(untrusted.stderr)
    finally:
        server.close()

    missing = run_notary(
        "status",
        DOC_ID,
        "--ca",
        str(tmp_path / "nope.pem"),
        env=env_for("https://127.0.0.1:9", tmp_path),
    )
    assert missing.returncode == 2 and "nope.pem" in only_line(missing.stderr)


def test_a_keep_alive_connection_closed_by_the_server_is_reopened(tmp_path: Path) -> None:
    from cli.client import Client

    server = Scripted()
    # HTTP/1.1 without "Connection: close", then the server drops the socket anyway
    # (as one does when its idle keep-alive timer fires): the client's next request
    # meets a dead connection and must send again on a new one.
    server.httpd.RequestHandlerClass.protocol_version = "HTTP/1.1"  # type: ignore[attr-defined]

    def answer_then_hang_up(h: BaseHTTPRequestHandler) -> None:
        document_meta("00" * 32, 1)(h)
        h.wfile.flush()
        h.close_connection = True

    server.routes[f"/v1/documents/{DOC_ID}"] = answer_then_hang_up
    try:
        with Client(server.url) as api:
            for _ in range(3):
                assert api.document(DOC_ID)["id"] == DOC_ID
    finally:
        server.close()
    assert len(server.seen) == 3
