"""``notary verify`` as a court clerk runs it: a process, files on disk, exit codes."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notary import receipt_factory as rf


def notary(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    fx = rf.build()
    paths = {
        "doc": tmp_path / "filing.txt",
        "receipt": tmp_path / "filing.receipt.json",
        "trust": tmp_path / "trust.json",
    }
    paths["doc"].write_bytes(fx.document)
    paths["receipt"].write_text(fx.receipt.dumps())
    paths["trust"].write_text(fx.trust.dumps())
    return paths


def test_valid_receipt_exits_0_and_ticks_every_check(files: dict[str, Path]) -> None:
    out = notary(
        "verify",
        str(files["doc"]),
        "--receipt",
        str(files["receipt"]),
        "--trust",
        str(files["trust"]),
    )
    assert out.returncode == 0, out.stderr
    assert "✓ inclusion" in out.stdout and "VALID" in out.stdout
    assert "✗" not in out.stdout


def test_by_digest_and_as_json(files: dict[str, Path]) -> None:
    digest = hashlib.sha256(files["doc"].read_bytes()).hexdigest()
    out = notary(
        "verify",
        "--sha256",
        digest,
        "--receipt",
        str(files["receipt"]),
        "--trust",
        str(files["trust"]),
        "--json",
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["valid"] is True


def test_edited_document_exits_1_with_the_reason(files: dict[str, Path]) -> None:
    data = bytearray(files["doc"].read_bytes())
    data[0] ^= 0x20
    files["doc"].write_bytes(bytes(data))
    out = notary(
        "verify",
        str(files["doc"]),
        "--receipt",
        str(files["receipt"]),
        "--trust",
        str(files["trust"]),
    )
    assert out.returncode == 1
    assert "✗ document" in out.stdout and "INVALID" in out.stdout


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda p: p["receipt"].unlink(), "cannot read receipt"),
        (lambda p: p["doc"].unlink(), "cannot read file"),
        (lambda p: p["trust"].write_text("{not json"), "unusable trust file"),
        (
            lambda p: p["trust"].write_text('{"format": "notary-trust", "version": 9}'),
            "unusable trust file",
        ),
    ],
)
def test_unreadable_input_exits_2_with_one_line(
    files: dict[str, Path], mangle, message: str
) -> None:  # type: ignore[no-untyped-def]
    mangle(files)
    out = notary(
        "verify",
        str(files["doc"]),
        "--receipt",
        str(files["receipt"]),
        "--trust",
        str(files["trust"]),
    )
    assert out.returncode == 2
    assert out.stderr.startswith("notary: ") and message in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_usage_errors_exit_2(files: dict[str, Path]) -> None:
    both = notary(
        "verify",
        str(files["doc"]),
        "--sha256",
        "00" * 32,
        "--receipt",
        str(files["receipt"]),
        "--trust",
        str(files["trust"]),
    )
    assert both.returncode == 2 and "not both" in both.stderr
    bad_hex = notary(
        "verify",
        "--sha256",
        "xyz",
        "--receipt",
        str(files["receipt"]),
        "--trust",
        str(files["trust"]),
    )
    assert bad_hex.returncode == 2 and "64 hex" in bad_hex.stderr
    missing = notary("verify", str(files["doc"]))
    assert missing.returncode == 2 and "--receipt" in missing.stderr
