"""S3Node pieces that need no server: configuration checks and error mapping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import botocore.exceptions as bce
import pytest

from storage.errors import (
    BlobNotFoundError,
    ConfigError,
    NodeFullError,
    NodeIOError,
    NodePermissionError,
    NodeUnavailableError,
)
from storage.nodes.s3 import S3Node, map_s3_error


def _client_error(code: str, status: int) -> bce.ClientError:
    return bce.ClientError(
        {
            "Error": {"Code": code, "Message": f"msg {code}"},
            "ResponseMetadata": {"HTTPStatusCode": status},
        },
        "GetObject",
    )


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_client_error("NoSuchKey", 404), BlobNotFoundError),
        (_client_error("404", 404), BlobNotFoundError),  # HEAD: no body, no code
        (_client_error("NoSuchBucket", 404), NodeIOError),
        (_client_error("AccessDenied", 403), NodePermissionError),
        (_client_error("SignatureDoesNotMatch", 403), NodePermissionError),
        (_client_error("InvalidAccessKeyId", 403), NodePermissionError),
        (_client_error("QuotaExceeded", 403), NodeFullError),  # RGW's quota answer
        (_client_error("EntityTooLarge", 400), NodeFullError),
        (_client_error("XMinioStorageFull", 507), NodeFullError),
        (_client_error("SlowDown", 503), NodeUnavailableError),
        (_client_error("InternalError", 500), NodeIOError),
        (_client_error("InvalidRequest", 400), NodeIOError),
        (bce.EndpointConnectionError(endpoint_url="http://x"), NodeUnavailableError),
        (bce.ConnectTimeoutError(endpoint_url="http://x"), NodeUnavailableError),
        (bce.ReadTimeoutError(endpoint_url="http://x"), NodeUnavailableError),
        (bce.ConnectionClosedError(endpoint_url="http://x"), NodeUnavailableError),
        (bce.NoCredentialsError(), NodePermissionError),
        (bce.ParamValidationError(report="bad"), NodeIOError),
        (ConnectionRefusedError(), NodeUnavailableError),
        (TimeoutError(), NodeUnavailableError),
        (ValueError("odd"), NodeIOError),
    ],
)
def test_error_mapping(exc: BaseException, expected: type[Exception]) -> None:
    err = map_s3_error(exc, "node-x", "seg/1", "get")
    assert type(err) is expected
    assert err.node == "node-x"
    assert err.key == "seg/1"
    assert "node-x" in str(err) and "seg/1" in str(err)


def _node(**kwargs: object) -> S3Node:
    options: dict[str, object] = {
        "endpoint_url": "http://127.0.0.1:1",
        "bucket": "bkt",
        "access_key": "AKIDEXAMPLE",
        "secret_key": "wJalrXUtnFEMI-very-secret",
    }
    options.update(kwargs)
    return S3Node("n", **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"endpoint_url": "ftp://host"},
        {"endpoint_url": "127.0.0.1:9000"},
        {"endpoint_url": "http://user:pass@127.0.0.1:9000"},
        {"bucket": ""},
        {"access_key": ""},
        {"secret_key": ""},
        {"object_lock_days": 0},
        {"object_lock_days": 1, "retain_until": lambda: datetime.now(UTC)},
        {"max_attempts": 0},
        {"max_connections": 0},
        {"list_page_size": 1001},
        {"read_timeout": 0},
        {"verify_tls": "/no/such/ca-bundle.pem"},
        {"prefix": "../up"},
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        _node(**kwargs)


async def test_repr_hides_credentials() -> None:
    node = _node(prefix="p")
    try:
        text = repr(node) + str(node)
        assert "very-secret" not in text and "AKIDEXAMPLE" not in text
        assert "bkt" in text and node.prefix == "p/"
    finally:
        await node.close()


async def test_retention_date_follows_the_injected_clock() -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    node = _node(object_lock_days=7, clock=lambda: now)
    plain = _node()
    try:
        assert node.retention_date() == now + timedelta(days=7)
        assert plain.retention_date() is None
    finally:
        await node.close()
        await plain.close()
