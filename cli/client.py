"""A small synchronous HTTP client of the notary API, for the ``notary`` command.

Built on the standard library's :mod:`http.client` so that a command starts fast (no
aiohttp import) and needs no extra dependency. One :class:`Client` holds one keep-alive
connection to the service; it is not thread-safe (use one client per thread).

Usage::

    with Client("https://notary.example", token=token, ca=Path("ca.pem")) as api:
        with path.open("rb") as f:
            doc = api.upload(f, size=path.stat().st_size, kind="filing", on_progress=bar)
        doc = api.wait_anchored(doc["id"], timeout=120)
        receipt_text = api.receipt(doc["id"])

Every failure is one exception type, :class:`ApiError`, carrying ``status`` (the HTTP
status, or None when no HTTP answer came), ``code`` and ``detail``. For an RFC 9457
problem document from the service, ``code`` and ``detail`` are its members; otherwise
``code`` is one of:

    unreachable    the connection could not be made or broke (refused, DNS, reset)
    timeout        no answer within the client's timeout
    tls_error      the TLS handshake failed (certificate not trusted, wrong host name)
    http_<status>  an error status without a problem document (a proxy's error page)
    bad_response   an answer that is not what the API promises (not JSON, no field)
    digest_mismatch  downloaded bytes whose SHA-256 is not the document's

Bodies are streamed both ways: uploads read the source in blocks of ``BLOCK`` bytes,
downloads write to a sink block by block; nothing is held whole in memory. The bearer
token is sent as ``Authorization: Bearer <token>`` and never appears in an error or repr.
Redirects are not followed (they could carry the token to another host).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import http.client
import json
import re
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlencode, urlsplit

BLOCK = 256 * 1024
DOC_ID = re.compile(r"[0-9a-f]{32}")
USER_AGENT = "notary-cli/1"

Progress = Callable[[int], None]
"""Called with the number of bytes just sent or received."""


class Readable(Protocol):
    """Anything with ``read(size) -> bytes`` (an open binary file, for instance)."""

    def read(self, size: int = ..., /) -> bytes: ...


Body = bytes | Readable | Iterable[bytes] | None


class ClientConfigError(ValueError):
    """The client was configured with an unusable URL, token or CA file (a usage error)."""


class SourceError(Exception):
    """The local source of an upload did not yield the announced number of bytes (the
    file changed while it was sent). The upload is abandoned; nothing is stored."""


class ApiError(Exception):
    """The service answered with an error, or could not be reached.

    ``status`` is the HTTP status (None when no HTTP answer came), ``code`` a stable
    machine-readable code, ``detail`` one human-readable line. ``problem`` is the whole
    problem document when the service sent one.
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        detail: str,
        problem: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.problem: dict[str, Any] = dict(problem or {})

    def __str__(self) -> str:
        return f"{self.detail} ({self.code})"


@dataclass(frozen=True)
class Download:
    """What :meth:`Client.download` wrote: byte count and SHA-256 (hex) of those bytes."""

    size: int
    sha256: str


def check_doc_id(doc_id: str) -> str:
    """Return ``doc_id`` if it has the form of a document id (32 lowercase hex digits).

    Raises ClientConfigError otherwise, so a typo is a usage error, not a server call.
    """
    if not DOC_ID.fullmatch(doc_id):
        raise ClientConfigError(f"{doc_id!r} is not a document id (32 lowercase hex digits)")
    return doc_id


class _CountingReader:
    """A read-only view of ``source`` that hashes each block read and reports its size.

    :meth:`restart` goes back to where it started (to send the body again).
    """

    def __init__(self, source: BinaryIO, size: int, progress: Progress | None) -> None:
        self._source = source
        self._size = size
        self._start = source.tell() if source.seekable() else None
        self._progress = progress
        self.digest = hashlib.sha256()
        self.sent = 0

    @property
    def restartable(self) -> bool:
        return self._start is not None

    def restart(self) -> None:
        assert self._start is not None
        self._source.seek(self._start)
        self.digest = hashlib.sha256()
        if self._progress is not None and self.sent:
            self._progress(-self.sent)
        self.sent = 0

    def read(self, size: int = -1, /) -> bytes:
        # Never more than announced in Content-Length, and not fewer either: bytes past it
        # would corrupt the connection, a short body would hang it.
        left = self._size - self.sent
        data = self._source.read(min(BLOCK if size is None or size < 0 else size, left))
        if left > 0 and not data:
            raise SourceError(f"the source ended after {self.sent} of {self._size} bytes")
        if len(data) == left and self._source.read(1):
            raise SourceError(f"the source has more than the {self._size} bytes announced")
        if data:
            self.digest.update(data)
            self.sent += len(data)
            if self._progress is not None:
                self._progress(len(data))
        return data


class Client:
    """A client of one notary service at ``base_url`` (``http://`` or ``https://``).

    ``token``: bearer token, sent on every request when set. ``ca``: a PEM file of CA
    certificates to trust for https (default: the system's). ``timeout``: seconds to wait
    for a connection or for any single read or write. Raises ClientConfigError for a URL,
    token or CA file that cannot work.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        ca: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ClientConfigError(f"URL {base_url!r} must be http://HOST[:PORT] or https://...")
        if parts.query or parts.fragment:
            raise ClientConfigError(f"URL {base_url!r} must not have a query or fragment")
        try:
            self._port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            raise ClientConfigError(f"URL {base_url!r} has an invalid port") from None
        if token is not None and (not token or any(c in token for c in "\r\n\0 ")):
            raise ClientConfigError("the token must be non-empty, without spaces or line breaks")
        self.base_url = base_url.rstrip("/")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._tls: ssl.SSLContext | None = None
        if parts.scheme == "https":
            try:
                self._tls = ssl.create_default_context(cafile=str(ca) if ca else None)
            except (OSError, ssl.SSLError) as e:
                raise ClientConfigError(
                    f"CA file {ca}: {getattr(e, 'strerror', None) or e}"
                ) from None
        elif ca is not None:
            # A CA file with a plain http URL is almost certainly a mistake worth saying.
            raise ClientConfigError(f"a CA file is set but the URL {base_url} is not https")
        self._conn: http.client.HTTPConnection | None = None

    def __repr__(self) -> str:
        return f"Client({self.base_url!r}, token={'set' if self._token else 'none'})"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # -- the API -----------------------------------------------------------------------

    def upload(
        self,
        source: BinaryIO,
        *,
        size: int,
        kind: str,
        title: str | None = None,
        filename: str | None = None,
        media_type: str | None = None,
        project: str | None = None,
        supersedes: str | None = None,
        sha256: str | None = None,
        confidential: bool = False,
        on_progress: Progress | None = None,
    ) -> dict[str, Any]:
        """POST /v1/documents: stream ``size`` bytes of ``source``; return the document.

        Raises SourceError if ``source`` holds fewer or more than ``size`` bytes (the file
        changed meanwhile). The SHA-256 of the bytes actually sent is compared with the one
        the service computed; a difference raises ApiError ``digest_mismatch``. ``sha256``
        (hex), if given, makes the service itself refuse other bytes (422 ``sha256_mismatch``).
        ``confidential`` has the service seal the content (AES-256-GCM) before storing it;
        drafts (``dd_draft``) are always sealed.
        """
        params = {
            "confidential": "true" if confidential else None,
            "kind": kind,
            "title": title,
            "filename": filename,
            "project": project,
            "supersedes": supersedes,
            "sha256": sha256,
        }
        reader = _CountingReader(source, size, on_progress)
        headers = {
            "Content-Type": media_type or "application/octet-stream",
            "Content-Length": str(size),
        }
        with self.open(
            "POST",
            "/v1/documents",
            params=params,
            body=reader,
            headers=headers,
            replay=reader.restart if reader.restartable else None,
        ) as response:
            doc = _json_object(response)
        sent = reader.digest.hexdigest()
        if doc.get("sha256") not in (None, sent):
            raise ApiError(
                response.status,
                "digest_mismatch",
                f"the service stored SHA-256 {doc.get('sha256')}, the bytes sent have {sent}",
            )
        return doc

    def document(self, doc_id: str) -> dict[str, Any]:
        """GET /v1/documents/{id}: metadata and status."""
        return self.get_json(f"/v1/documents/{check_doc_id(doc_id)}")

    def versions(self, doc_id: str) -> list[dict[str, Any]]:
        """GET /v1/documents/{id}/versions: the version chain, oldest first."""
        body = self.get_json(f"/v1/documents/{check_doc_id(doc_id)}/versions")
        versions = body.get("versions")
        if not isinstance(versions, list):
            raise ApiError(200, "bad_response", "versions: no 'versions' list in the answer")
        return versions

    def wait_anchored(
        self,
        doc_id: str,
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> dict[str, Any]:
        """Poll the document until its status is ``anchored``; return it.

        Raises ApiError ``timeout`` (status None) when ``timeout`` seconds pass first.
        """
        deadline = clock() + timeout
        pause = 0.05
        while True:
            doc = self.document(doc_id)
            if doc.get("status") == "anchored":
                return doc
            if clock() >= deadline:
                raise ApiError(
                    None,
                    "timeout",
                    f"document {doc_id} is still {doc.get('status')} after {timeout:g} s",
                )
            sleep(min(pause, max(deadline - clock(), 0.0)))
            pause = min(pause * 2, 1.0)

    def receipt(self, doc_id: str, tree_size: int | None = None) -> str:
        """GET /v1/documents/{id}/receipt: the receipt JSON text (latest checkpoint, or
        the checkpoint of ``tree_size``)."""
        params = {"tree_size": str(tree_size)} if tree_size is not None else None
        with self.open(
            "GET", f"/v1/documents/{check_doc_id(doc_id)}/receipt", params=params
        ) as response:
            return _text(response)

    def latest_checkpoint(self) -> str:
        """GET /v1/checkpoints/latest: the newest committed checkpoint, a signed note."""
        with self.open("GET", "/v1/checkpoints/latest") as response:
            return _text(response)

    def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        """GET /v1/proofs/consistency: the RFC 9162 proof hashes from one size to another."""
        body = self.get_json(
            "/v1/proofs/consistency", params={"from": str(old_size), "to": str(new_size)}
        )
        hashes = body.get("hashes")
        try:
            if not isinstance(hashes, list):
                raise TypeError
            return [base64.b64decode(h, validate=True) for h in hashes]
        except (TypeError, binascii.Error):
            raise ApiError(200, "bad_response", "consistency proof: no base64 hash list") from None

    def download(
        self,
        doc_id: str,
        sink: BinaryIO,
        *,
        on_progress: Progress | None = None,
        expected_sha256: str | None = None,
    ) -> Download:
        """GET /v1/documents/{id}/content into ``sink``, block by block.

        Raises ApiError ``digest_mismatch`` when ``expected_sha256`` (hex) is given and the
        bytes differ, and ``unreachable`` when the body ends early. The caller decides
        what to do with ``sink`` then (write to a temporary file, rename on success).
        """
        digest = hashlib.sha256()
        size = 0
        with self.open("GET", f"/v1/documents/{check_doc_id(doc_id)}/content") as response:
            announced = response.getheader("Content-Length")
            try:
                while block := response.read(BLOCK):
                    digest.update(block)
                    sink.write(block)
                    size += len(block)
                    if on_progress is not None:
                        on_progress(len(block))
            except http.client.IncompleteRead:
                announced = announced or "more"
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise self._transport_error(e) from None
            # read(n) returns b"" when the connection drops: the length tells a short body.
            if announced is not None and announced != str(size):
                self.close()
                raise ApiError(
                    None,
                    "unreachable",
                    f"the download of {doc_id} ended early: {size} of {announced} bytes",
                )
        result = Download(size=size, sha256=digest.hexdigest())
        if expected_sha256 is not None and result.sha256 != expected_sha256.lower():
            raise ApiError(
                200,
                "digest_mismatch",
                f"document {doc_id}: received bytes have SHA-256 {result.sha256},"
                f" the document's is {expected_sha256}",
            )
        return result

    def ready(self) -> dict[str, Any]:
        """GET /readyz: the readiness report (ApiError http_503 when not ready)."""
        return self.get_json("/readyz")

    # -- generic requests (for other commands built on this client) ----------------------

    def get_json(self, path: str, params: Mapping[str, str | None] | None = None) -> dict[str, Any]:
        """GET ``path`` and return its JSON object."""
        with self.open("GET", path, params=params) as response:
            return _json_object(response)

    def request_json(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | None] | None = None,
        json_body: Any = None,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Send ``json_body`` (or a raw ``body``) and return the JSON object answered."""
        all_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode("utf-8")
            all_headers["Content-Type"] = "application/json"
        with self.open(method, path, params=params, body=body, headers=all_headers) as response:
            return _json_object(response)

    @contextlib.contextmanager
    def open(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | None] | None = None,
        body: Body = None,
        headers: Mapping[str, str] | None = None,
        replay: Callable[[], None] | None = None,
    ) -> Iterator[http.client.HTTPResponse]:
        """Send one request and yield its successful (< 300) response for streaming reads.

        ``params`` with None values are left out. ``body``: bytes, a readable binary file
        (give a ``Content-Length`` header) or an iterable of bytes (sent chunked). An error
        status raises ApiError. The response must be read within the ``with`` block; it is
        drained or the connection closed when the block ends.

        On a kept-alive connection that the server closed meanwhile, the request is sent
        again once on a new connection if the body can be replayed: no body, bytes, or a
        body for which ``replay`` (called first) rewinds it.
        """
        url = self._prefix + path
        query = {k: v for k, v in (params or {}).items() if v is not None}
        if query:
            url += "?" + urlencode(query)
        all_headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*"}
        all_headers.update(headers or {})
        if self._token is not None:
            all_headers["Authorization"] = f"Bearer {self._token}"
        if replay is None and (body is None or isinstance(body, bytes)):
            replay = _nothing
        try:
            response = self._send(method, url, body, all_headers, replay)
        except BaseException:
            # A body source that failed mid-request leaves the connection unusable.
            self.close()
            raise
        try:
            if response.status >= 300:
                raise _error_from(response)
            yield response
        finally:
            self._finish(response)

    # -- internals -----------------------------------------------------------------------

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._tls is not None:
                self._conn = http.client.HTTPSConnection(
                    self._host,
                    self._port,
                    timeout=self.timeout,
                    context=self._tls,
                    blocksize=BLOCK,
                )
            else:
                self._conn = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout, blocksize=BLOCK
                )
        return self._conn

    def _send(
        self,
        method: str,
        url: str,
        body: Body,
        headers: dict[str, str],
        replay: Callable[[], None] | None,
    ) -> http.client.HTTPResponse:
        for attempt in (1, 2):
            reused = self._conn is not None and self._conn.sock is not None
            conn = self._connection()
            try:
                conn.request(method, url, body=body, headers=headers)
            except (OSError, http.client.HTTPException) as e:
                # The server may have answered early (413, 422) and closed while we were
                # still sending: its answer is then more useful than the broken pipe.
                early = self._early_response(conn)
                if early is not None:
                    return early
                self.close()
                if reused and replay is not None and attempt == 1:
                    replay()
                    continue
                raise self._transport_error(e) from None
            try:
                return conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                stale = isinstance(e, http.client.RemoteDisconnected | ConnectionResetError)
                if stale and reused and replay is not None and attempt == 1:
                    replay()
                    continue
                raise self._transport_error(e) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _early_response(self, conn: http.client.HTTPConnection) -> http.client.HTTPResponse | None:
        if conn.sock is None:
            return None
        try:
            conn.sock.settimeout(min(self.timeout, 5.0))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException):
            return None
        return response if response.status >= 400 else None

    def _finish(self, response: http.client.HTTPResponse) -> None:
        if response.isclosed():
            if response.will_close:
                self.close()
            return
        # Drain a small leftover to keep the connection; otherwise just close it.
        try:
            length = response.length
            if length is not None and length <= BLOCK:
                response.read()
            else:
                self.close()
        except (OSError, http.client.HTTPException):
            self.close()
        if response.will_close:
            self.close()

    def _transport_error(self, e: BaseException) -> ApiError:
        where = self.base_url
        if isinstance(e, ssl.SSLCertVerificationError):
            return ApiError(None, "tls_error", f"TLS with {where}: {e.verify_message or e}")
        if isinstance(e, ssl.SSLError):
            return ApiError(None, "tls_error", f"TLS with {where}: {e.reason or e}")
        if isinstance(e, TimeoutError | socket.timeout):
            return ApiError(None, "timeout", f"{where} did not answer within {self.timeout:g} s")
        if isinstance(e, socket.gaierror):
            return ApiError(None, "unreachable", f"cannot resolve {self._host}: {e.strerror or e}")
        if isinstance(e, OSError):
            return ApiError(None, "unreachable", f"cannot reach {where}: {e.strerror or e}")
        return ApiError(None, "unreachable", f"connection to {where} broke: {e!r}")


def _nothing() -> None:
    pass


def _error_from(response: http.client.HTTPResponse) -> ApiError:
    """The ApiError for an error response: its problem document if it has one."""
    raw = response.read(64 * 1024)
    ctype = (response.getheader("Content-Type") or "").split(";")[0].strip()
    if ctype in ("application/problem+json", "application/json"):
        try:
            problem = json.loads(raw)
        except ValueError:
            problem = None
        if isinstance(problem, dict) and isinstance(problem.get("code"), str):
            detail = problem.get("detail") or problem.get("title") or response.reason
            return ApiError(response.status, problem["code"], str(detail), problem)
    text = raw.decode("utf-8", "replace").strip().splitlines()
    first = text[0][:200] if text else ""
    detail = f"HTTP {response.status} {response.reason}" + (f": {first}" if first else "")
    return ApiError(response.status, f"http_{response.status}", detail)


def _text(response: http.client.HTTPResponse, limit: int = 1024 * 1024) -> str:
    parts: list[bytes] = []
    total = 0
    try:
        while total <= limit and (part := response.read(min(BLOCK, limit + 1 - total))):
            parts.append(part)
            total += len(part)
    except (OSError, http.client.HTTPException) as e:
        raise ApiError(None, "unreachable", f"the answer was cut short: {e!r}") from None
    raw = b"".join(parts)
    if len(raw) > limit:
        raise ApiError(response.status, "bad_response", f"answer larger than {limit} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(response.status, "bad_response", "answer is not UTF-8 text") from None


def _json_object(response: http.client.HTTPResponse) -> dict[str, Any]:
    try:
        value = json.loads(_text(response))
    except ValueError:
        raise ApiError(response.status, "bad_response", "answer is not JSON") from None
    if not isinstance(value, dict):
        raise ApiError(response.status, "bad_response", "answer is not a JSON object")
    return value


__all__ = [
    "BLOCK",
    "ApiError",
    "Client",
    "ClientConfigError",
    "Download",
    "Progress",
    "SourceError",
    "check_doc_id",
]
