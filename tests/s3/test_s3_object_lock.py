"""S3 Object Lock on a real S3 server: COMPLIANCE retention on every fragment."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from storage.errors import ConfigError, NodePermissionError
from tests.s3.conftest import MakeNode, S3Cluster

pytestmark = pytest.mark.s3


def _versions(raw: object, bucket: str, key: str) -> list[dict[str, object]]:
    resp = raw.list_object_versions(Bucket=bucket, Prefix=key)  # type: ignore[attr-defined]
    return [v for v in resp.get("Versions", []) + resp.get("DeleteMarkers", []) if v["Key"] == key]


async def test_locked_fragment_refuses_deletion_and_stays_readable(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    # A fixed clock: the retention date is exactly what the node computes from it.
    fixed_now = datetime.now(UTC).replace(microsecond=0)
    node = await make_node(
        2, name="lock2", object_lock_days=1, clock=lambda: fixed_now, bucket_object_lock=True
    )
    fragment = bytes(range(256)) * 300
    await node.put("doc/seg0/frag3", fragment)

    raw = s3_cluster.raw_client(2)
    retention = raw.get_object_retention(Bucket=bucket_name, Key="doc/seg0/frag3")["Retention"]
    assert retention["Mode"] == "COMPLIANCE"
    assert retention["RetainUntilDate"] == fixed_now + timedelta(days=1)

    with pytest.raises(NodePermissionError) as info:
        await node.delete("doc/seg0/frag3")
    assert info.value.node == "lock2" and info.value.key == "doc/seg0/frag3"
    assert await node.get("doc/seg0/frag3") == fragment

    # Going around the node does not help either: the locked version itself refuses.
    (version,) = _versions(raw, bucket_name, "doc/seg0/frag3")
    with pytest.raises(raw.exceptions.ClientError, match="AccessDenied"):
        raw.delete_object(Bucket=bucket_name, Key="doc/seg0/frag3", VersionId=version["VersionId"])
    assert await node.get("doc/seg0/frag3") == fragment


async def test_retain_until_callable_sets_the_date(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    until = (datetime.now(UTC) + timedelta(hours=5)).replace(microsecond=0)
    node = await make_node(3, retain_until=lambda: until, bucket_object_lock=True)
    await node.put("m/1", b"manifest")
    raw = s3_cluster.raw_client(3)
    retention = raw.get_object_retention(Bucket=bucket_name, Key="m/1")["Retention"]
    assert retention == {"Mode": "COMPLIANCE", "RetainUntilDate": until}


async def test_deletion_allowed_once_retention_has_passed(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    until = datetime.now(UTC) + timedelta(seconds=2)
    node = await make_node(4, retain_until=lambda: until, bucket_object_lock=True)
    await node.put("short/1", b"x")
    with pytest.raises(NodePermissionError):
        await node.delete("short/1")
    # Poll (the server's clock decides) until the retention ends, then it deletes.
    deadline = time.monotonic() + 15
    while True:
        try:
            await node.delete("short/1")
            break
        except NodePermissionError:
            assert time.monotonic() < deadline, "retention never ended"
            await asyncio.sleep(0.2)
    assert await node.stat("short/1") is None
    # Every version is gone, not merely hidden behind a delete marker.
    assert _versions(s3_cluster.raw_client(4), bucket_name, "short/1") == []


async def test_delete_on_versioned_bucket_removes_every_version(
    make_node: MakeNode, s3_cluster: S3Cluster, bucket_name: str
) -> None:
    node = await make_node(5)
    raw = s3_cluster.raw_client(5)
    raw.put_bucket_versioning(Bucket=bucket_name, VersioningConfiguration={"Status": "Enabled"})
    await node.put("v/1", b"first")
    await node.put("v/1", b"second")
    await node.put("v/10", b"neighbour")  # shares the prefix; must survive
    assert len(_versions(raw, bucket_name, "v/1")) == 2
    await node.delete("v/1")
    assert _versions(raw, bucket_name, "v/1") == []
    assert await node.get("v/10") == b"neighbour"


async def test_ensure_bucket_refuses_lock_on_an_unlocked_bucket(make_node: MakeNode) -> None:
    await make_node(6, bucket_object_lock=False)  # creates the bucket without Object Lock
    with pytest.raises(ConfigError, match="without Object Lock"):
        await make_node(6, object_lock_days=1)
