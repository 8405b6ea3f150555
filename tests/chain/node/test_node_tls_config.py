"""TLS on every link (peers and clients), node config errors, and the CLI commands."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, build_cluster

from chain.checkpoint import verify_checkpoint
from chain.node.client import LedgerClient, LedgerClientError
from chain.node.config import ConfigError, load_config


async def test_tls_cluster_commits_and_clients_verify_the_ca(tmp_path: Path) -> None:
    cluster = build_cluster(tmp_path, n=4, observer=False, tls=True)
    assert cluster.ca is not None
    for node in cluster.nodes:
        node.start()
    try:
        await cluster.wait_up(cluster.nodes)
        assert all(u.startswith("https://") for u in cluster.urls())
        async with LedgerClient(cluster.urls(), ca=cluster.ca) as client:
            r = await client.submit([b"over tls" + bytes(100)])
            info = await client.wait_committed(r.entry_hashes[0], timeout=30)
            verify_checkpoint(await client.checkpoint(info.tree_size, timeout=30), cluster.trust)
            status = await client.status()
            # The peers reached each other over TLS (verified against the same CA).
            assert len(status["peers_up"]) == 3
        # Without the CA the server's certificate is not trusted.
        async with LedgerClient(cluster.urls()[:1]) as untrusting:
            with pytest.raises(LedgerClientError, match="no validator answered"):
                await untrusting.status()
        # `notary chain status` over TLS.
        args = ["chain", "status", "--url", cluster.urls()[0], "--ca", str(cluster.ca)]
        out = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "cli.main", *args],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["tree_size"] >= 1
    finally:
        for node in cluster.nodes:
            node.stop()


OBS = 'name = "a"\nrole = "observer"\ntrust_file = "t"\ndata_dir = "d"\n'


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "setting"),
    [
        ('role = "validator"\ntrust_file = "t"\ndata_dir = "d"\nkey_file = "k"\n', "'name'"),
        ('name = "a"\nrole = "boss"\ntrust_file = "t"\ndata_dir = "d"\n', "'role'"),
        ('name = "a"\ntrust_file = "t"\ndata_dir = "d"\n', "'key_file'"),
        ('name = "a"\nrole = "observer"\ndata_dir = "d"\n', "'trust_file'"),
        (
            OBS + "[listen]\nport = 70000\n",
            "'listen.port'",
        ),
        (
            OBS + '[tls]\ncert = "c.pem"\n',
            "'tls.",
        ),
        (
            OBS + '[peers]\nv1 = "ftp://x"\n',
            "'peers.v1'",
        ),
        (
            OBS + "[limits]\npeer_queue = 0\n",
            "'limits.peer_queue'",
        ),
        (OBS + "bogus = 1\n", "'bogus'"),
        ("name = \n", "not valid TOML"),
    ],
)
def test_config_errors_name_the_setting(tmp_path: Path, text: str, setting: str) -> None:
    path = _write(tmp_path / "node.toml", text)
    with pytest.raises(ConfigError, match=setting) as e:
        load_config(path)
    assert str(path) in str(e.value)


def test_config_resolves_relative_paths(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "node.toml",
        'name = "v0"\nkey_file = "keys/v0.key"\ntrust_file = "trust.json"\ndata_dir = "data"\n'
        "[consensus]\nbatch_entries = 100\n",
    )
    cfg = load_config(path)
    assert cfg.key_file == tmp_path / "keys" / "v0.key"
    assert cfg.data_dir == tmp_path / "data"
    assert cfg.consensus.batch_entries == 100 and cfg.is_validator


def test_node_run_with_bad_config_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path / "node.toml", 'name = "a"\nrole = "observer"\ndata_dir = "d"\n')
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "node", "run", "--config", str(path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2
    assert "trust_file" in out.stderr
