"""The production topology files: compose.yaml, deploy/notary.toml, deploy/genesis.sh.

No Docker daemon is needed: the compose file is checked for the properties the
topology promises, the API's configuration is loaded by the service's own settings
loader, and the genesis script runs here for real with the project's `notary`.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from chain.trust import TrustFile
from notary.config import S3NodeSettings, load_settings
from notary.sealing import parse_keyring

ROOT = Path(__file__).resolve().parents[1]
VALIDATORS = [f"validator-{i}" for i in range(4)]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> source of a service's volumes."""
    out = {}
    for v in service.get("volumes", []):
        source, target, *_ = v.split(":")
        out[target] = source
    return out


def test_every_service_has_an_image_and_every_volume_is_declared(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    declared = set(compose["volumes"])
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for source in _mounts(service).values():
            assert source.startswith("./") or source in declared, (name, source)
    assert {"postgres", "api", "genesis", *VALIDATORS} <= set(services)
    assert sum(1 for s in services if s.startswith("s3-")) == 6


def test_each_validator_has_its_own_key_and_store(compose: dict[str, Any]) -> None:
    services = compose["services"]
    keys, stores = set(), set()
    for i, name in enumerate(VALIDATORS):
        mounts = _mounts(services[name])
        assert services[name]["environment"]["NAME"] == name
        assert mounts["/etc/notary/key"] == f"key-{i}"
        keys.add(mounts["/etc/notary/key"])
        stores.add(mounts["/var/lib/notary"])
        # No validator sees another's key volume.
        others = {f"key-{j}" for j in range(4) if j != i}
        assert not others & set(mounts.values())
    assert len(keys) == len(stores) == 4
    # The API holds no validator key.
    assert not {f"key-{j}" for j in range(4)} & set(_mounts(services["api"]).values())


def test_the_api_configuration_loads(compose: dict[str, Any]) -> None:
    settings = load_settings(ROOT / "deploy" / "notary.toml", env={})
    assert settings.chain.mode == "remote"
    assert settings.auth.mode == "tokens"
    assert settings.database_url().startswith("postgresql+asyncpg://")
    nodes = settings.storage.nodes
    assert len(nodes) == 6 and all(isinstance(n, S3NodeSettings) for n in nodes)
    assert len({n.zone for n in nodes}) == 6
    hosts = {n.endpoint_url.split("//")[1].split(":")[0] for n in nodes}
    assert hosts == {s for s in compose["services"] if s.startswith("s3-")}
    # Files the configuration names are where compose.yaml mounts them in the API.
    mounts = _mounts(compose["services"]["api"])
    assert mounts["/etc/notary/notary.toml"] == "./deploy/notary.toml"
    assert settings.chain.trust_file is not None
    assert settings.sealing.master_key_file is not None
    assert str(settings.chain.trust_file.parent) in mounts
    assert str(settings.sealing.master_key_file.parent) in mounts


def test_genesis_creates_keys_trust_and_master_key_once(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    if shutil.which("notary", path=env["PATH"]) is None:
        pytest.skip("the notary command is not installed next to this Python")
    script = ROOT / "deploy" / "genesis.sh"
    out = tmp_path / "out"
    run = subprocess.run(
        ["sh", str(script), str(out), "notary.example/prod", "4"],
        env={**env, "NOTARY_UID": str(os.getuid())},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    trust = TrustFile.load(out / "trust" / "trust.json")
    assert trust.chain_id == "notary.example/prod"
    assert [v.name for v in trust.validators] == VALIDATORS
    assert [v.address for v in trust.validators] == [f"http://{n}:7100" for n in VALIDATORS]
    for name in VALIDATORS:
        key = out / "keys" / name / "validator.key"
        assert stat.S_IMODE(key.stat().st_mode) & 0o077 == 0, key
    master = out / "sealing" / "master.key"
    assert stat.S_IMODE(master.stat().st_mode) & 0o077 == 0
    assert len(parse_keyring(master.read_text(), str(master)).keys) == 1
    before = (out / "trust" / "trust.json").read_bytes(), master.read_bytes()
    again = subprocess.run(
        ["sh", str(script), str(out), "notary.example/prod", "4"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert again.returncode == 0 and "nothing to do" in again.stderr
    assert ((out / "trust" / "trust.json").read_bytes(), master.read_bytes()) == before
