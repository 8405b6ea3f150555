"""``notary keygen`` and ``notary genesis`` end to end: files, outputs, exit codes."""

from __future__ import annotations

import json
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from chain.checkpoint import Checkpoint, assemble_checkpoint, sign_checkpoint, verify_checkpoint
from chain.keys import Signer
from chain.trust import TrustFile, Validator
from cli.main import main

CHAIN = "notary.example/cli-test"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def _keygen(capsys: pytest.CaptureFixture[str], tmp: Path, i: int) -> Path:
    code, out, err = _run(
        capsys,
        "keygen",
        "--name",
        f"v{i}.notary.example",
        "--out",
        str(tmp / f"v{i}.key"),
        "--address",
        f"http://127.0.0.1:{7100 + i}",
    )
    assert code == 0, err
    record = tmp / f"v{i}.json"
    record.write_text(out)
    return record


def test_keygen_writes_key_and_prints_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    key = tmp_path / "v.key"
    code, out, err = _run(capsys, "keygen", "--name", "v.example", "--out", str(key))
    assert code == 0, err
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    record = json.loads(out)
    validator = Validator.from_record(record)
    signer = Signer.load(key)
    assert validator.name == signer.name == "v.example"
    assert validator.public_key == signer.public_key
    assert record["verifier_key"] == signer.verifier_key
    assert record["address"] == ""
    # The private key never reaches the terminal.
    private = json.loads(key.read_text())["private_key"]
    assert private not in out and private not in err


def test_keygen_public_out_and_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key, pub = tmp_path / "k", tmp_path / "k.json"
    args = ["keygen", "--name", "v1", "--out", str(key), "--public-out", str(pub)]
    code, out, _ = _run(capsys, *args)
    assert code == 0
    assert out == ""
    first = Validator.from_record(json.loads(pub.read_text()))
    before = key.read_bytes()

    code, _, err = _run(capsys, *args)
    assert code == 2
    assert err.startswith("notary: ") and "exists" in err and len(err.splitlines()) == 1
    assert key.read_bytes() == before

    code, _, _ = _run(capsys, *args, "--force")
    assert code == 0
    second = Validator.from_record(json.loads(pub.read_text()))
    assert second.public_key != first.public_key
    assert Signer.load(key).public_key == second.public_key


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--name", "bad name"], "whitespace"),
        (["--name", "a+b"], "'+'"),
        (["--name", "ok", "--address", "ftp://x"], "address"),
        ([], "--name"),
    ],
)
def test_keygen_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    key = tmp_path / "k"
    code, _, err = _run(capsys, "keygen", "--out", str(key), *args)
    assert code == 2
    assert err.startswith("notary: ")
    assert message in err
    assert not key.exists()


def test_genesis_from_four_records_verifies_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = [_keygen(capsys, tmp_path, i) for i in range(4)]
    trust_path = tmp_path / "trust.json"
    code, out, err = _run(
        capsys, "genesis", "--chain-id", CHAIN, *map(str, records), "--out", str(trust_path)
    )
    assert code == 0, err
    assert "threshold=3" in out
    trust = TrustFile.load(trust_path)
    assert trust.chain_id == CHAIN
    assert trust.threshold == 3
    assert [v.name for v in trust.validators] == [f"v{i}.notary.example" for i in range(4)]
    assert trust.validators[2].address == "http://127.0.0.1:7102"

    # The keys written by keygen sign checkpoints that the genesis accepts.
    signers = [Signer.load(tmp_path / f"v{i}.key") for i in range(4)]
    cp = Checkpoint(CHAIN, 7, bytes(32))
    note = assemble_checkpoint(cp, [sign_checkpoint(cp, s) for s in signers[1:]])
    assert verify_checkpoint(note, trust).signers == tuple(s.name for s in signers[1:])


def test_genesis_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = [_keygen(capsys, tmp_path, i) for i in range(4)]
    out = tmp_path / "trust.json"
    base = ["genesis", "--chain-id", CHAIN, "--out", str(out)]

    def fails(*args: str, message: str) -> None:
        code, _, err = _run(capsys, *args)
        assert code == 2, err
        assert err.startswith("notary: ")
        assert len(err.strip().splitlines()) == 1
        assert message in err

    fails(*base, *map(str, records), "--threshold", "2", message="threshold")
    fails(*base, str(records[0]), str(records[0]), message="appears twice")
    fails(*base, *map(str, records), str(tmp_path / "missing.json"), message="cannot read")
    (tmp_path / "garbage.json").write_text("{")
    fails(*base, str(tmp_path / "garbage.json"), message="not a JSON")
    (tmp_path / "trust-like.json").write_text(json.dumps({"format": "notary-trust"}))
    fails(*base, str(tmp_path / "trust-like.json"), message="format")
    fails(
        "genesis", "--chain-id", "bad id", *map(str, records), "--out", str(out), message="chain_id"
    )
    fails("genesis", "--chain-id", CHAIN, "--out", str(out), message="RECORDS")
    assert not out.exists()

    code, _, _ = _run(capsys, *base, *map(str, records))
    assert code == 0
    before = out.read_bytes()
    fails(*base, *map(str, records[:1]), message="exists")
    assert out.read_bytes() == before


def test_as_a_process(tmp_path: Path) -> None:
    key = tmp_path / "p.key"
    ok = subprocess.run(
        [sys.executable, "-m", "cli.main", "keygen", "--name", "p.example", "--out", str(key)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert Validator.from_record(json.loads(ok.stdout)).public_key == Signer.load(key).public_key
    again = subprocess.run(
        [sys.executable, "-m", "cli.main", "keygen", "--name", "p.example", "--out", str(key)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2
    assert again.stderr.startswith("notary: ") and len(again.stderr.strip().splitlines()) == 1
