"""The production topology end to end: the service on PostgreSQL, six S3 nodes (real Ceph
gateways) and four validator processes reached over HTTP; a validator killed with SIGKILL
while documents are anchoring, two gateways killed before retrieval."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path

import aiohttp
import pytest

from notary.config import load_settings
from notary.server import running
from notary.verify import DocumentDigest, verify_receipt
from tests.chain.node.conftest import build_cluster
from tests.notary.conftest import postgres_url  # noqa: F401 (a fixture)
from tests.notary.test_service_e2e import migrate
from tests.s3.conftest import N_GATEWAYS, MakeNode, S3Cluster

pytestmark = pytest.mark.s3


def _config(tmp: Path, db: str, trust: Path, s3: S3Cluster, bucket: str) -> Path:
    lines = [
        f'data_dir = "{tmp / "var"}"',
        "[server]",
        "port = 0",
        "[database]",
        f'url = "{db}"',
        "[chain]",
        'mode = "remote"',
        f'trust_file = "{trust}"',
        "[storage]",
        f"segment_size = {128 * 1024}",
        "node_timeout = 5.0",
    ]
    for i in range(1, N_GATEWAYS + 1):
        gw = s3.gateway(i)
        lines += [
            "[[storage.nodes]]",
            'kind = "s3"',
            f'name = "s3-{i}"',
            f'zone = "zone-{i}"',
            f'endpoint_url = "{gw.endpoint}"',
            f'bucket = "{bucket}"',
            f'access_key = "{gw.access_key}"',
            f'secret_key = "{gw.secret_key}"',
        ]
    path = tmp / "notary.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


async def test_production_topology(
    tmp_path: Path,
    make_node: MakeNode,
    s3_cluster: S3Cluster,
    bucket_name: str,
    postgres_url: str,  # noqa: F811
) -> None:
    # The buckets exist before the service starts (operators create them once).
    await asyncio.gather(*(make_node(i) for i in range(1, N_GATEWAYS + 1)))
    validators = build_cluster(tmp_path / "validators", observer=False)
    for v in validators.validators:
        v.start()
    try:
        await validators.wait_up(validators.validators)
        await migrate(postgres_url)
        config = _config(tmp_path, postgres_url, validators.trust_path, s3_cluster, bucket_name)
        async with (
            running(load_settings(config, env={})) as (_, url),
            aiohttp.ClientSession() as http,
        ):
            docs = [os.urandom(200_000 + i) for i in range(6)]

            async def upload(doc: bytes) -> dict:  # type: ignore[type-arg]
                params = {"kind": "transfer_agreement", "wait": "true", "timeout": "90"}
                async with http.post(f"{url}/v1/documents", params=params, data=doc) as r:
                    body = await r.json()
                    assert r.status == 201, body
                    return body  # type: ignore[no-any-return]

            uploads = [asyncio.create_task(upload(d)) for d in docs]
            validators.validators[2].kill9()  # while those are anchoring
            answers = await asyncio.gather(*uploads)
            for doc, answer in zip(docs, answers, strict=True):
                digest = DocumentDigest(hashlib.sha256(doc).digest(), len(doc))
                verdict = verify_receipt(digest, json.dumps(answer["receipt"]), validators.trust)
                assert verdict.valid, verdict.checks

            s3_cluster.kill(1)
            s3_cluster.kill(4)
            doc_id = answers[0]["document"]["id"]
            async with http.get(f"{url}/v1/documents/{doc_id}/content") as r:
                assert r.status == 200 and await r.read() == docs[0]
            async with http.get(f"{url}/readyz") as r:
                ready = await r.json()
            assert r.status == 503 and ready["checks"]["storage"]["ok"] is False
    finally:
        for v in validators.validators:
            v.stop()
