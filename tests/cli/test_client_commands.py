"""The client commands as a bank or a court runs them: ``notary`` processes against one
live ``notary serve`` (shared by the module), files on disk, exit codes, stderr lines."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.checkpoint import Checkpoint, assemble_checkpoint, parse_checkpoint, sign_checkpoint
from chain.keys import Signer
from chain.note import parse_note
from tests.cli.live_server import LiveServer, clean_env, run_notary, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    live = start_server(tmp_path_factory.mktemp("server"))
    try:
        yield live
    finally:
        live.stop()


@pytest.fixture
def env(server: LiveServer, tmp_path: Path) -> dict[str, str]:
    """A user's environment: their own config and state folders, the service's URL."""
    return clean_env(
        NOTARY_URL=server.url,
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        XDG_STATE_HOME=str(tmp_path / "state"),
    )


def one_stderr_line(out: object) -> str:
    stderr = out.stderr  # type: ignore[attr-defined]
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("notary: "), stderr
    assert "Traceback" not in stderr
    return str(lines[0])


def upload(env: dict[str, str], *args: str) -> list[dict[str, object]]:
    out = run_notary("upload", *args, "--json", env=env)
    assert out.returncode == 0, out.stderr
    result: list[dict[str, object]] = json.loads(out.stdout)
    return result


def test_upload_wait_writes_receipts_that_verify_accepts(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    draft = tmp_path / "draft.pdf"
    draft.write_bytes(os.urandom(300_000))
    filing = tmp_path / "filing.txt"
    filing.write_bytes(b"Q3 filing, final\n")
    out = run_notary(
        "upload", str(draft), str(filing), "--kind", "filing", "--title", "Q3", "--wait", env=env
    )
    assert out.returncode == 0, out.stderr
    for path in (draft, filing):
        receipt = path.with_name(path.name + ".receipt.json")
        assert f"receipt {receipt}" in out.stdout
        verified = run_notary(
            "verify",
            str(path),
            "--receipt",
            str(receipt),
            "--trust",
            str(server.trust_path),
            env=env,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "VALID" in verified.stdout
        data = json.loads(receipt.read_text())
        assert data["document"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    # The receipt of one file does not prove the other.
    crossed = run_notary(
        "verify",
        str(draft),
        "--receipt",
        str(filing) + ".receipt.json",
        "--trust",
        str(server.trust_path),
        env=env,
    )
    assert crossed.returncode == 1


def test_upload_refuses_to_overwrite_a_receipt_before_sending(
    env: dict[str, str], tmp_path: Path
) -> None:
    doc = tmp_path / "a.txt"
    doc.write_bytes(b"a")
    receipt = tmp_path / "a.txt.receipt.json"
    receipt.write_text("earlier evidence")
    out = run_notary("upload", str(doc), "--kind", "filing", "--wait", env=env)
    assert out.returncode == 2
    assert "exists" in one_stderr_line(out)
    assert receipt.read_text() == "earlier evidence"


def test_get_returns_identical_bytes_and_status_reports(
    env: dict[str, str], tmp_path: Path
) -> None:
    doc = tmp_path / "agreement.bin"
    doc.write_bytes(os.urandom(200_000))
    [result] = upload(
        env,
        str(doc),
        "--kind",
        "transfer_agreement",
        "--project",
        "ACME-2025",
        "--wait",
        "--receipt-dir",
        str(tmp_path / "receipts"),
    )
    assert (tmp_path / "receipts" / "agreement.bin.receipt.json").is_file()
    doc_id = str(result["id"])

    copy = tmp_path / "copy.bin"
    out = run_notary("get", doc_id, "-o", str(copy), env=env)
    assert out.returncode == 0, out.stderr
    assert copy.read_bytes() == doc.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]
    again = run_notary("get", doc_id, "-o", str(copy), env=env)
    assert again.returncode == 2 and "exists" in one_stderr_line(again)

    status = run_notary("status", doc_id, "--json", env=env)
    assert status.returncode == 0, status.stderr
    meta = json.loads(status.stdout)
    assert meta["status"] == "anchored" and meta["project"] == "ACME-2025"
    assert meta["sha256"] == hashlib.sha256(doc.read_bytes()).hexdigest()
    text = run_notary("status", doc_id, env=env)
    assert "status:" in text.stdout and "anchored" in text.stdout and doc_id in text.stdout


def test_confidential_upload_is_sealed_on_the_nodes_and_reads_back(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    marker = b"CONFIDENTIAL-TERM-SHEET-" + os.urandom(8).hex().encode()
    doc = tmp_path / "terms.txt"
    doc.write_bytes(marker * 50)
    [result] = upload(env, str(doc), "--kind", "filing", "--confidential", "--wait")
    status = run_notary("status", str(result["id"]), "--json", env=env)
    assert json.loads(status.stdout)["sealed"] is True
    fragments = [p for p in (server.data_dir / "nodes").rglob("*") if p.is_file()]
    assert fragments and not [p for p in fragments if marker in p.read_bytes()]
    copy = tmp_path / "copy.txt"
    out = run_notary("get", str(result["id"]), "-o", str(copy), env=env)
    assert out.returncode == 0, out.stderr
    assert copy.read_bytes() == doc.read_bytes()
    receipt = tmp_path / "terms.txt.receipt.json"
    check = run_notary(
        "verify", str(doc), "--receipt", str(receipt), "--trust", str(server.trust_path), env=env
    )
    assert check.returncode == 0, check.stdout


def test_receipt_and_refresh_against_a_later_checkpoint(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    doc = tmp_path / "disclosure.txt"
    doc.write_bytes(b"material disclosure\n" * 100)
    [result] = upload(env, str(doc), "--kind", "disclosure", "--wait")
    doc_id = str(result["id"])
    receipt = tmp_path / "r.json"
    out = run_notary("receipt", doc_id, "-o", str(receipt), env=env)
    assert out.returncode == 0, out.stderr
    before = json.loads(receipt.read_text())["tree_size"]
    exists = run_notary("receipt", doc_id, "-o", str(receipt), env=env)
    assert exists.returncode == 2 and "--refresh" in one_stderr_line(exists)

    later = tmp_path / "later.txt"
    later.write_bytes(b"a later filing")
    upload(env, str(later), "--kind", "filing", "--wait")  # the log grows
    refreshed = run_notary("receipt", doc_id, "-o", str(receipt), "--refresh", "--json", env=env)
    assert refreshed.returncode == 0, refreshed.stderr
    report = json.loads(refreshed.stdout)
    assert report["previous_tree_size"] == before
    assert report["tree_size"] > before and report["consistency"] == "consistent"
    assert json.loads(receipt.read_text())["tree_size"] == report["tree_size"]
    verified = run_notary(
        "verify", str(doc), "--receipt", str(receipt), "--trust", str(server.trust_path), env=env
    )
    assert verified.returncode == 0, verified.stdout

    # A receipt file of another document is not "refreshed" into this one.
    other = tmp_path / "later.txt.receipt.json"
    kept = other.read_text()
    wrong = run_notary("receipt", doc_id, "-o", str(other), "--refresh", env=env)
    assert wrong.returncode == 2 and "another document" in one_stderr_line(wrong)
    assert other.read_text() == kept


def _state_files(env: dict[str, str]) -> list[Path]:
    return sorted((Path(env["XDG_STATE_HOME"]) / "notary" / "checkpoints").glob("*.json"))


def test_checkpoint_verify_twice_checks_consistency(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    trust = str(server.trust_path)
    first = run_notary("checkpoint", "--verify", "--trust", trust, "--json", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert report["valid"] and [c["name"] for c in report["checks"]] == [
        "checkpoint",
        "signatures",
        "history",
    ]
    [state] = _state_files(env)
    size1 = json.loads(first.stdout)["checkpoint"]["size"]

    grow = tmp_path / "grow.txt"
    grow.write_bytes(b"growth between two verifications")
    upload(env, str(grow), "--kind", "filing", "--wait")

    second = run_notary("checkpoint", "--verify", "--json", env={**env, "NOTARY_TRUST": trust})
    assert second.returncode == 0, second.stdout + second.stderr
    report = json.loads(second.stdout)
    size2 = report["checkpoint"]["size"]
    assert size2 > size1
    consistency = next(c for c in report["checks"] if c["name"] == "consistency")
    assert consistency["outcome"] == "pass" and f"{size1} -> {size2}" in consistency["detail"]
    stored = json.loads(state.read_text())
    assert parse_checkpoint(parse_note(stored["checkpoint"]).text).size == size2

    plain = run_notary("checkpoint", env=env)
    assert plain.returncode == 0 and "size:" in plain.stdout


def _verify_with_state(server: LiveServer, env: dict[str, str], note: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    trust = json.loads(server.trust_path.read_text())
    state = tmp_path / "state.json"
    state.write_text(
        json.dumps(
            {
                "format": "notary-checkpoint-state",
                "version": 1,
                "chain_id": trust["chain_id"],
                "checkpoint": note,
                "verified_at": "2025-01-01T00:00:00Z",
                "url": server.url,
            }
        )
    )
    return run_notary(
        "checkpoint",
        "--verify",
        "--trust",
        str(server.trust_path),
        "--state",
        str(state),
        env=env,
    ), state


def _latest(env: dict[str, str]) -> Checkpoint:
    out = run_notary("checkpoint", "--json", env=env)
    assert out.returncode == 0, out.stderr
    note = json.loads(out.stdout)["note"]
    return parse_checkpoint(parse_note(note).text)


def test_forged_checkpoint_in_the_state_file_is_detected(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    real = _latest(env)
    out = run_notary("checkpoint", "--json", env=env)
    note = json.loads(out.stdout)["note"]
    # Same signature lines, another root: none of the signatures holds any more.
    forged_body = Checkpoint(real.origin, real.size, hashlib.sha256(b"forged").digest()).body()
    forged = forged_body + note[len(real.body()) :]
    result, state = _verify_with_state(server, env, forged, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    line = one_stderr_line(result)
    assert "history" in line and "damaged or forged" in line
    assert json.loads(state.read_text())["checkpoint"] == forged  # evidence kept as found


def test_forked_ledger_is_detected_by_consistency(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    # The validators' own keys sign an alternative history: every signature is valid,
    # only the consistency proof from that tree to the service's can expose it.
    doc = tmp_path / "x.txt"
    doc.write_bytes(b"make sure the tree has a few leaves")
    upload(env, str(doc), "--kind", "filing", "--wait")
    real = _latest(env)
    assert real.size >= 2
    keys = sorted((server.data_dir / "chain" / "keys").glob("*.key"))
    signers = [Signer.load(k) for k in keys]
    fork = Checkpoint(real.origin, real.size - 1, hashlib.sha256(b"another history").digest())
    note = assemble_checkpoint(fork, [sign_checkpoint(fork, s) for s in signers])
    result, state = _verify_with_state(server, env, note, tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "✓ history" in result.stdout  # the forged history itself was well signed
    line = one_stderr_line(result)
    assert "consistency" in line and "forked or rewritten" in line
    assert json.loads(state.read_text())["checkpoint"] == note  # not overwritten


def test_config_file_env_and_flags_with_masked_token(
    server: LiveServer, env: dict[str, str], tmp_path: Path
) -> None:
    config = Path(env["XDG_CONFIG_HOME"]) / "notary" / "config.toml"
    config.parent.mkdir(parents=True)
    token = "s3cret-token-value-1234"
    config.write_text(f'url = "http://127.0.0.1:9"\ntoken = "{token}"\ntrust = "trust.json"\n')
    config.chmod(0o600)
    no_url = {k: v for k, v in env.items() if k != "NOTARY_URL"}
    out = run_notary("config", "show", "--json", env=no_url)
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    assert shown["url"] == {"value": "http://127.0.0.1:9", "source": "file", "from": str(config)}
    assert shown["trust"]["value"] == str(config.parent / "trust.json")
    assert token not in out.stdout and shown["token"]["source"] == "file"
    assert shown["token"]["value"].startswith("****")

    out = run_notary("config", "show", env={**no_url, "NOTARY_URL": server.url})
    assert token not in out.stdout
    assert f"{server.url}   [env NOTARY_URL]" in out.stdout
    out = run_notary(
        "config",
        "show",
        "--url",
        "https://flag.example",
        "--json",
        env={**no_url, "NOTARY_URL": server.url},
    )
    assert json.loads(out.stdout)["url"]["source"] == "flag"

    # The file's URL answers nothing: a service error; the env's URL works (token sent,
    # ignored by a service without accounts).
    down = run_notary("checkpoint", env=no_url)
    assert down.returncode == 3 and "unreachable" in one_stderr_line(down)
    up = run_notary("checkpoint", env={**no_url, "NOTARY_URL": server.url})
    assert up.returncode == 0, up.stderr

    config.write_text('url = "http://127.0.0.1:9"\ntokn = "typo"\n')
    typo = run_notary("config", "show", env=no_url)
    assert typo.returncode == 2 and "unknown key 'tokn'" in one_stderr_line(typo)


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (("upload", "{tmp}/missing.pdf", "--kind", "filing"), 2, "missing.pdf"),
        (("upload", "{tmp}/doc.txt", "--kind", "memo"), 2, "--kind"),
        (("upload", "{tmp}/doc.txt", "--kind", "filing", "--receipt-dir", "{tmp}"), 2, "--wait"),
        (("upload", "{tmp}", "--kind", "filing"), 2, "directory"),
        (("upload", "{tmp}/doc.txt", "--kind", "filing", "--supersedes", "v1"), 2, "document id"),
        (("get", "not-an-id", "-o", "{tmp}/out"), 2, "not a document id"),
        (("get", "0" * 32, "-o", "{tmp}/out"), 3, "(document_not_found)"),
        (("get", "0" * 32, "-o", "{tmp}/nofolder/out"), 2, "not a folder"),
        (("status", "f" * 32), 3, "(document_not_found)"),
        (("receipt", "0" * 32, "-o", "{tmp}/r.json"), 3, "(document_not_found)"),
        (("status", "0" * 32, "--no-such-flag"), 2, "--no-such-flag"),
        (("checkpoint", "--verify"), 2, "trust file"),
        (("checkpoint", "--verify", "--trust", "{tmp}/doc.txt"), 2, "trust file"),
        (("status", "0" * 32, "--url", "http://127.0.0.1:9"), 3, "(unreachable)"),
        (("status", "0" * 32, "--url", "ftp://x"), 2, "http"),
    ],
)
def test_bad_input_gives_the_documented_exit_code_and_one_line(
    env: dict[str, str], tmp_path: Path, args: tuple[str, ...], code: int, needle: str
) -> None:
    (tmp_path / "doc.txt").write_bytes(b"doc")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    out = run_notary(*argv, env=env)
    assert out.returncode == code, (out.returncode, out.stdout, out.stderr)
    assert needle in one_stderr_line(out)
    assert not (tmp_path / "out").exists()


def test_upload_of_many_files_reports_json(env: dict[str, str], tmp_path: Path) -> None:
    paths = []
    for i in range(3):
        p = tmp_path / f"log-{i}.txt"
        p.write_bytes(os.urandom(1000 + i))
        paths.append(p)
    results = upload(env, *map(str, paths), "--kind", "broker_log")
    assert [r["file"] for r in results] == [str(p) for p in paths]
    for r, p in zip(results, paths, strict=True):
        assert r["sha256"] == hashlib.sha256(p.read_bytes()).hexdigest()
        assert r["status"] in ("anchoring", "anchored") and r["receipt"] is None


def test_a_source_that_changes_size_is_refused_and_the_client_recovers(
    server: LiveServer,
) -> None:
    import io

    from cli.client import Client, SourceError

    with Client(server.url) as api:
        with pytest.raises(SourceError, match="more than the 10 bytes"):
            api.upload(io.BytesIO(b"x" * 11), size=10, kind="filing")
        with pytest.raises(SourceError, match="ended after 5 of 10"):
            api.upload(io.BytesIO(b"x" * 5), size=10, kind="filing")
        doc = api.upload(io.BytesIO(b"y" * 10), size=10, kind="filing")
        assert doc["sha256"] == hashlib.sha256(b"y" * 10).hexdigest()
        assert api.document(doc["id"])["size"] == 10
