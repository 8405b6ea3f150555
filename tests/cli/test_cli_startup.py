"""``notary verify`` (a court clerk's laptop) and the client commands load only what they
need: no aiohttp, SQLAlchemy or pyeclib, so a process starts fast (benchmarks/cli_bench.py
measures it; this guards against an import creeping back in)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.notary import receipt_factory as rf

HEAVY = ("aiohttp", "sqlalchemy", "pyeclib", "boto3", "pydantic", "rich")

PROBE = """
import json, sys
from cli.main import main
code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & set(%r))
print(json.dumps({"exit": code, "heavy": heavy}))
"""


def loaded(*args: str) -> tuple[int, list[str]]:
    out = subprocess.run(
        [sys.executable, "-c", PROBE % (HEAVY,), *args], capture_output=True, text=True, timeout=60
    )
    assert out.stdout.strip(), out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return int(result["exit"]), list(result["heavy"])


def test_verify_imports_nothing_heavy(tmp_path: Path) -> None:
    fx = rf.build()
    (tmp_path / "doc").write_bytes(fx.document)
    (tmp_path / "r.json").write_text(fx.receipt.dumps())
    (tmp_path / "t.json").write_text(fx.trust.dumps())
    code, heavy = loaded(
        "verify",
        str(tmp_path / "doc"),
        "--receipt",
        str(tmp_path / "r.json"),
        "--trust",
        str(tmp_path / "t.json"),
    )
    assert code == 0
    assert heavy == []


@pytest.mark.parametrize("args", [("status", "0" * 32), ("checkpoint",)])
def test_client_commands_import_no_server_code(args: tuple[str, ...]) -> None:
    # Against a closed port: the command runs to its service error, loading what it needs.
    code, heavy = loaded(*args, "--url", "http://127.0.0.1:9")
    assert code == 3
    assert heavy == []
