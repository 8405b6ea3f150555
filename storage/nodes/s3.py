"""A storage node that is one bucket (optionally a prefix in it) on an S3 server.

boto3 is synchronous, so every call runs on a small thread pool owned by the
node, sized like botocore's connection pool (``max_connections``), never on the
event loop. botocore does the retrying ("standard" mode: exponential backoff
with jitter on throttling, 5xx and connection errors, ``max_attempts`` tries in
all) and the timeouts; whatever still fails is translated here into
:mod:`storage.errors`, carrying the node's name and the key.

Works with any S3 server that speaks path-style addressing (Ceph RGW, MinIO,
Garage, SeaweedFS, AWS). Operations are described in ``docs/s3.md``.

Object Lock: when a retention is configured (``object_lock_days`` or
``retain_until``), every put carries ``ObjectLockMode=COMPLIANCE`` and a
retain-until date; the bucket must have Object Lock enabled (see
:meth:`S3Node.ensure_bucket`). Every put carries ``Content-MD5``, which S3
requires for puts with a retention and which lets the server reject bytes
damaged in transit.

What ``delete`` means: the blob's bytes are gone, not merely hidden. On an
unversioned bucket that is one DeleteObject. On a versioned bucket (every
Object Lock bucket is one) a plain DeleteObject would only add a delete marker
and keep the bytes, so ``delete`` removes every version of the key and every
delete marker one by one; a version still under retention is refused by the
server and surfaces as :class:`~storage.errors.NodePermissionError` (the key
stays readable until its retention ends).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlparse

import boto3
import botocore.exceptions as bce
from botocore.config import Config

from storage.errors import (
    BlobNotFoundError,
    ConfigError,
    InvalidKeyError,
    NodeError,
    NodeFullError,
    NodeIOError,
    NodePermissionError,
    NodeUnavailableError,
)
from storage.nodes.base import BlobStat, validate_key, validate_prefix

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

__all__ = ["S3Node", "map_s3_error"]

log = logging.getLogger(__name__)

T = TypeVar("T")
# The class defines a method named ``list``; these aliases keep the builtin in reach.
_KeyList = list[str]

# S3 error codes, by what they mean for a node. Codes differ between servers
# (AWS, RGW, MinIO); HTTP statuses catch the rest.
_NOT_FOUND_CODES = frozenset({"NoSuchKey", "NotFound", "NoSuchVersion", "404"})
_FULL_CODES = frozenset(
    {
        "QuotaExceeded",  # RGW (sent with 403)
        "EntityTooLarge",
        "InsufficientStorage",
        "XMinioStorageFull",
        "XMinioAdminBucketQuotaExceeded",
        "StorageFull",
    }
)
_PERMISSION_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "InvalidAccessKeyId",
        "SignatureDoesNotMatch",
        "InvalidObjectState",
        "ObjectLocked",
        "403",
    }
)
_UNAVAILABLE_CODES = frozenset({"SlowDown", "ServiceUnavailable", "RequestTimeout", "503"})


def map_s3_error(exc: BaseException, node: str, key: str | None, op: str) -> NodeError:
    """Translate a botocore/boto3 (or socket) exception into a storage NodeError.

    ``op`` names the operation for the message ("put", "get", ...). The result
    carries ``node`` and ``key``; the original exception should be chained by the
    caller (``raise map_s3_error(...) from exc``). Never includes credentials:
    botocore's messages hold codes and URLs, not keys or signatures.
    """
    if isinstance(exc, bce.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        detail = str(err.get("Message") or code or f"HTTP {status}")
        msg = f"{op} failed: {code or status}: {detail}"
        if code in _NOT_FOUND_CODES or (status == 404 and code != "NoSuchBucket"):
            return BlobNotFoundError(node, key, f"{op}: no such blob")
        # Before the permission check: RGW answers QuotaExceeded with a 403.
        if code in _FULL_CODES or status in (413, 507):
            return NodeFullError(node, key, msg)
        if code in _PERMISSION_CODES or status in (401, 403):
            return NodePermissionError(node, key, msg)
        if code in _UNAVAILABLE_CODES or status in (502, 503, 504):
            return NodeUnavailableError(node, key, msg)
        return NodeIOError(node, key, msg)
    if isinstance(exc, bce.NoCredentialsError | bce.PartialCredentialsError):
        return NodePermissionError(node, key, f"{op} failed: no usable credentials")
    if isinstance(exc, bce.SSLError):
        return NodeUnavailableError(node, key, f"{op} failed: TLS error: {exc}")
    if isinstance(
        exc,
        bce.ConnectionError  # EndpointConnectionError, ConnectTimeoutError, proxy errors
        | bce.HTTPClientError  # ReadTimeoutError, ConnectionClosedError, ResponseStreamingError
        | bce.IncompleteReadError
        | ConnectionError
        | TimeoutError,
    ):
        return NodeUnavailableError(node, key, f"{op} failed: {type(exc).__name__}: {exc}")
    if isinstance(exc, bce.BotoCoreError | OSError):
        return NodeIOError(node, key, f"{op} failed: {type(exc).__name__}: {exc}")
    return NodeIOError(node, key, f"{op} failed: unexpected {type(exc).__name__}: {exc}")


def _utcnow() -> datetime:
    return datetime.now(UTC)


# One boto3 session for every node, holding no credentials itself (each client
# gets its node's keys): it caches the S3 service model, so a node's client
# costs ~15 ms instead of ~200 ms. Sessions are not thread-safe, hence the lock.
_SESSION_LOCK = threading.Lock()
_SESSIONS: dict[str, boto3.session.Session] = {}


def _new_client(**kwargs: Any) -> S3Client:
    with _SESSION_LOCK:
        session = _SESSIONS.get("shared")
        if session is None:
            session = _SESSIONS["shared"] = boto3.session.Session()
        return session.client("s3", **kwargs)


class S3Node:
    """One S3 bucket (and optional key prefix in it) as a :class:`StorageNode`.

    Preconditions: ``endpoint_url`` is an ``http://`` or ``https://`` URL; the
    bucket exists (or call :meth:`ensure_bucket` once); at most one of
    ``object_lock_days`` and ``retain_until`` is given, and then the bucket has
    Object Lock enabled. ``verify_tls`` is True (system CAs), False (no
    verification: tests only) or the path of a CA bundle. ``clock`` returns an
    aware UTC datetime; it is injectable so tests can fix retention dates.
    Credentials are handed to botocore and not kept on the object, so they
    appear in no repr, log line or error message.
    """

    def __init__(
        self,
        name: str,
        *,
        endpoint_url: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        zone: str = "default",
        prefix: str = "",
        object_lock_days: int | None = None,
        retain_until: Callable[[], datetime] | None = None,
        clock: Callable[[], datetime] = _utcnow,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        max_connections: int = 8,
        verify_tls: bool | str = True,
        list_page_size: int = 1000,
    ) -> None:
        if not name:
            raise ConfigError("an S3 node needs a name")
        parsed = urlparse(endpoint_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"S3 node {name!r}: endpoint_url must be http(s)://host[:port]")
        if parsed.username or parsed.password:
            # It would show in repr and error messages; keys go in access_key/secret_key.
            raise ConfigError(f"S3 node {name!r}: no credentials in endpoint_url")
        if not bucket:
            raise ConfigError(f"S3 node {name!r}: bucket is required")
        if not access_key or not secret_key:
            # Empty keys would make botocore look for credentials elsewhere
            # (environment, instance metadata): never what a node means.
            raise ConfigError(f"S3 node {name!r}: access_key and secret_key are required")
        if object_lock_days is not None and retain_until is not None:
            raise ConfigError(f"S3 node {name!r}: give object_lock_days or retain_until, not both")
        if object_lock_days is not None and object_lock_days < 1:
            raise ConfigError(f"S3 node {name!r}: object_lock_days must be >= 1")
        if max_attempts < 1 or max_connections < 1 or not 1 <= list_page_size <= 1000:
            raise ConfigError(
                f"S3 node {name!r}: max_attempts, max_connections >= 1; list_page_size 1..1000"
            )
        if connect_timeout <= 0 or read_timeout <= 0:
            raise ConfigError(f"S3 node {name!r}: timeouts must be positive")
        if isinstance(verify_tls, str) and not Path(verify_tls).is_file():
            raise ConfigError(f"S3 node {name!r}: CA bundle {verify_tls!r} is not a file")
        if prefix:
            try:
                validate_prefix(prefix)
            except InvalidKeyError as exc:
                raise ConfigError(f"S3 node {name!r}: bad prefix: {exc}") from exc
            prefix = prefix.rstrip("/") + "/"

        self._name = name
        self._zone = zone
        self._endpoint_url = endpoint_url
        self._bucket = bucket
        self._prefix = prefix
        self._region = region
        self._object_lock_days = object_lock_days
        self._retain_until = retain_until
        self._clock = clock
        self._list_page_size = list_page_size
        self._closed = False

        options: dict[str, Any] = {
            "region_name": region,
            "connect_timeout": connect_timeout,
            "read_timeout": read_timeout,
            "retries": {"mode": "standard", "total_max_attempts": max_attempts},
            "max_pool_connections": max_connections,
            "s3": {"addressing_style": "path"},
        }
        # botocore >= 1.36 adds a CRC32 to every request by default, which
        # several S3 servers reject; we send Content-MD5 ourselves instead.
        for opt in ("request_checksum_calculation", "response_checksum_validation"):
            if opt in Config.OPTION_DEFAULTS:
                options[opt] = "when_required"
        self._client = _new_client(
            endpoint_url=endpoint_url,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            verify=verify_tls,
            config=Config(**options),
        )
        self._executor = ThreadPoolExecutor(
            max_workers=max_connections, thread_name_prefix=f"s3node-{name}"
        )

    # -- identity ---------------------------------------------------------

    @property
    def name(self) -> str:
        """The node's unique, stable name in its pool."""
        return self._name

    @property
    def zone(self) -> str:
        """The node's failure domain."""
        return self._zone

    @property
    def bucket(self) -> str:
        """The bucket this node stores into."""
        return self._bucket

    @property
    def prefix(self) -> str:
        """The key prefix inside the bucket ("" or ending in "/")."""
        return self._prefix

    def __repr__(self) -> str:
        return (
            f"S3Node(name={self._name!r}, zone={self._zone!r}, endpoint_url="
            f"{self._endpoint_url!r}, bucket={self._bucket!r}, prefix={self._prefix!r})"
        )

    __str__ = __repr__

    # -- plumbing ---------------------------------------------------------

    async def _call(self, op: str, key: str | None, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the node's threads; translate any failure into a NodeError."""
        if self._closed:
            raise NodeUnavailableError(self._name, key, f"{op}: node is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except NodeError:
            raise
        except Exception as exc:
            err = map_s3_error(exc, self._name, key, op)
            log.debug("%s", err)
            raise err from exc

    def _object_key(self, key: str) -> str:
        return self._prefix + validate_key(key)

    def retention_date(self) -> datetime | None:
        """The retain-until date a put made now would carry, or None without Object Lock."""
        if self._retain_until is not None:
            return self._retain_until()
        if self._object_lock_days is not None:
            return self._clock() + timedelta(days=self._object_lock_days)
        return None

    # -- StorageNode ------------------------------------------------------

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` (one PutObject: atomic; up to 5 GiB).

        With Object Lock configured the object is retained in COMPLIANCE mode
        until :meth:`retention_date`; no one can delete it before then.
        """
        okey = self._object_key(key)
        until = self.retention_date()

        def run() -> None:
            # Hashed here, on the node's thread: a few ms per MiB kept off the loop.
            md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
            if until is None:
                self._client.put_object(Bucket=self._bucket, Key=okey, Body=data, ContentMD5=md5)
            else:
                self._client.put_object(
                    Bucket=self._bucket,
                    Key=okey,
                    Body=data,
                    ContentMD5=md5,
                    ObjectLockMode="COMPLIANCE",
                    ObjectLockRetainUntilDate=until,
                )

        await self._call("put", key, run)

    async def get(self, key: str) -> bytes:
        """Return the blob's bytes; BlobNotFoundError if there is none."""
        okey = self._object_key(key)

        def run() -> bytes:
            resp = self._client.get_object(Bucket=self._bucket, Key=okey)
            body = resp["Body"]
            try:
                return body.read()
            finally:
                body.close()

        return await self._call("get", key, run)

    async def stat(self, key: str) -> BlobStat | None:
        """Size of the blob under ``key``, or None if there is none."""
        okey = self._object_key(key)

        def run() -> int:
            return self._client.head_object(Bucket=self._bucket, Key=okey)["ContentLength"]

        try:
            size = await self._call("stat", key, run)
        except BlobNotFoundError:
            return None
        return BlobStat(key=key, size=size)

    async def delete(self, key: str) -> None:
        """Remove every version of the blob; a missing blob is not an error.

        A version still under Object Lock retention is refused by the server:
        NodePermissionError, and the blob stays readable.
        """
        okey = self._object_key(key)
        # Asked every time, not cached: an operator may enable versioning on the
        # bucket at any moment, and a stale answer would leave bytes behind a
        # delete marker. Object Lock implies versioning.
        versioned = self.retention_date() is not None or await self._call(
            "delete", key, self._bucket_is_versioned
        )
        if not versioned:
            await self._call(
                "delete", key, lambda: self._client.delete_object(Bucket=self._bucket, Key=okey)
            )
            return
        versions = await self._call("delete", key, functools.partial(self._versions_of, okey))
        refused: NodeError | None = None
        for version_id in versions:
            try:
                await self._call(
                    "delete",
                    key,
                    functools.partial(
                        self._client.delete_object,
                        Bucket=self._bucket,
                        Key=okey,
                        VersionId=version_id,
                    ),
                )
            except BlobNotFoundError:
                pass  # deleted concurrently: that is what we wanted
            except NodePermissionError as exc:
                # Keep deleting the other versions (e.g. stale delete markers).
                refused = refused or exc
        if refused is not None:
            raise refused

    async def list(self, prefix: str = "") -> AsyncIterator[str]:
        """Yield every key starting with ``prefix``, page by page.

        Objects in the bucket whose names are not valid blob keys (put there by
        something else) are skipped.
        """
        validate_prefix(prefix)
        full = self._prefix + prefix
        token: str | None = None
        while True:
            page = await self._call(
                "list", prefix or None, functools.partial(self._page, full, token)
            )
            keys, token = page
            for okey in keys:
                key = okey[len(self._prefix) :]
                try:
                    validate_key(key)
                except InvalidKeyError:
                    log.debug("node %s: skipping foreign object %r", self._name, okey)
                    continue
                yield key
            if token is None:
                return

    async def close(self) -> None:
        """Stop the node's threads and close its connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        # Don't wait for calls stuck on a dead server: their threads end on
        # their own timeouts.
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    # -- bucket management ------------------------------------------------

    async def ensure_bucket(self, object_lock: bool | None = None) -> None:
        """Create the bucket if it is missing, with Object Lock if ``object_lock``.

        ``object_lock`` defaults to whether this node has a retention
        configured. If the bucket exists but lacks Object Lock while it is
        wanted, ConfigError: Object Lock can only be enabled at creation on
        most servers.
        """
        want_lock = self.retention_date() is not None if object_lock is None else object_lock

        def exists() -> bool:
            try:
                self._client.head_bucket(Bucket=self._bucket)
            except bce.ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:
                    return False
                raise
            return True

        def create() -> None:
            params: dict[str, Any] = {"Bucket": self._bucket}
            if self._region != "us-east-1":
                params["CreateBucketConfiguration"] = {"LocationConstraint": self._region}
            if want_lock:
                params["ObjectLockEnabledForBucket"] = True
            try:
                self._client.create_bucket(**params)
            except bce.ClientError as exc:
                if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                    raise

        def lock_enabled() -> bool:
            try:
                conf = self._client.get_object_lock_configuration(Bucket=self._bucket)
            except bce.ClientError as exc:
                if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
                    return False
                raise
            return conf.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"

        if not await self._call("ensure_bucket", None, exists):
            await self._call("ensure_bucket", None, create)
            return
        if want_lock and not await self._call("ensure_bucket", None, lock_enabled):
            raise ConfigError(
                f"S3 node {self._name!r}: bucket {self._bucket!r} exists without Object Lock; "
                "create a new bucket with Object Lock enabled"
            )

    # -- helpers run on the node's threads ----------------------------------

    def _bucket_is_versioned(self) -> bool:
        status = self._client.get_bucket_versioning(Bucket=self._bucket).get("Status")
        # Suspended buckets still hold the versions made while enabled.
        return status in ("Enabled", "Suspended")

    def _versions_of(self, okey: str) -> _KeyList:
        """Version ids of every version and delete marker of exactly ``okey``."""
        ids: _KeyList = []
        kwargs: dict[str, Any] = {"Bucket": self._bucket, "Prefix": okey}
        while True:
            resp = self._client.list_object_versions(**kwargs)
            for entry in [*resp.get("Versions", []), *resp.get("DeleteMarkers", [])]:
                if entry.get("Key") == okey and "VersionId" in entry:
                    ids.append(entry["VersionId"])
            if not resp.get("IsTruncated"):
                return ids
            kwargs["KeyMarker"] = resp.get("NextKeyMarker", "")
            kwargs["VersionIdMarker"] = resp.get("NextVersionIdMarker", "")

    def _page(self, full_prefix: str, token: str | None) -> tuple[_KeyList, str | None]:
        kwargs: dict[str, Any] = {
            "Bucket": self._bucket,
            "Prefix": full_prefix,
            "MaxKeys": self._list_page_size,
        }
        if token is not None:
            kwargs["ContinuationToken"] = token
        resp = self._client.list_objects_v2(**kwargs)
        keys = [obj["Key"] for obj in resp.get("Contents", []) if "Key" in obj]
        nxt = resp.get("NextContinuationToken") if resp.get("IsTruncated") else None
        return keys, nxt
