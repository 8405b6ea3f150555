"""``notary checkpoint [--verify]``: the ledger's latest checkpoint, checked like a witness.

With ``--verify`` the checkpoint's signatures are checked against the trust file, and
the last checkpoint verified is kept in a small local state file. The next run then
also checks an RFC 9162 consistency proof from that tree to the new one, so a ledger
that was forked or rewritten since (two trees that cannot both be true) is detected,
even when every checkpoint carries enough valid signatures.

State file (JSON, one per chain id, ``$XDG_STATE_HOME/notary/checkpoints/`` by default,
``~/.local/state`` when unset)::

    {"format": "notary-checkpoint-state", "version": 1, "chain_id": "...",
     "checkpoint": "<signed note>", "verified_at": "<RFC 3339 UTC>", "url": "..."}

The stored note is verified again against the trust file on every run: a state file
whose checkpoint lacks the validators' signatures (forged, edited) is reported, exit 1.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from cli.output import FAILED, USAGE, api_errors, fail, print_json, write_atomically
from cli.settings import ClientSettings, client_options

if TYPE_CHECKING:
    from chain.checkpoint import Checkpoint
    from chain.trust import TrustFile
    from cli.client import Client

STATE_FORMAT = "notary-checkpoint-state"
STATE_VERSION = 1


def state_path(chain_id: str, env: dict[str, str] | None = None) -> Path:
    """The default state file of ``chain_id`` under ``XDG_STATE_HOME``."""
    env = dict(os.environ) if env is None else env
    base = env.get("XDG_STATE_HOME") or ""
    root = Path(base) if Path(base).is_absolute() else Path.home() / ".local" / "state"
    # The chain id may hold '/' and ':'; a digest makes a safe, stable file name.
    name = hashlib.sha256(chain_id.encode("utf-8")).hexdigest()[:16]
    return root / "notary" / "checkpoints" / f"{name}.json"


@dataclass
class _Report:
    checks: list[dict[str, str]]
    checkpoint: Checkpoint | None = None

    def add(self, name: str, ok: bool | None, detail: str) -> None:
        outcome = "info" if ok is None else ("pass" if ok else "fail")
        self.checks.append({"name": name, "outcome": outcome, "detail": detail})

    @property
    def valid(self) -> bool:
        return all(c["outcome"] != "fail" for c in self.checks)


def _summary(cp: Checkpoint) -> dict[str, Any]:
    import base64

    return {
        "origin": cp.origin,
        "size": cp.size,
        "root": base64.b64encode(cp.root).decode("ascii"),
    }


def _load_trust(settings: ClientSettings) -> TrustFile:
    from chain.errors import ChainError
    from chain.trust import TrustFile

    path = settings.path("trust")
    if path is None:
        fail(USAGE, "--verify needs a trust file: --trust, NOTARY_TRUST or 'trust' in the config")
    try:
        return TrustFile.loads(path.read_bytes(), where=str(path))
    except OSError as e:
        fail(USAGE, f"cannot read trust file {path}: {e.strerror or e}")
    except ChainError as e:
        fail(USAGE, f"unusable trust file: {e}")


def _load_state(path: Path, trust: TrustFile, report: _Report) -> Checkpoint | None:
    """The last verified checkpoint from ``path``, re-verified; None on the first run."""
    from chain.checkpoint import verify_checkpoint
    from chain.errors import ChainError

    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        report.add("history", None, f"first verification (no state in {path})")
        return None
    except OSError as e:
        fail(USAGE, f"cannot read state file {path}: {e.strerror or e}")
    try:
        state = json.loads(raw)
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
            raise ValueError(f"not a {STATE_FORMAT} file")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported version {state.get('version')!r}")
        if state.get("chain_id") != trust.chain_id:
            raise ValueError(f"chain id {state.get('chain_id')!r} is not {trust.chain_id!r}")
        note = state.get("checkpoint")
        if not isinstance(note, str):
            raise ValueError("no checkpoint")
        verified = verify_checkpoint(note, trust)
    except (ValueError, ChainError) as e:
        report.add("history", False, f"state file {path} is damaged or forged: {e}")
        return None
    report.add(
        "history",
        True,
        f"last verified checkpoint: size {verified.checkpoint.size}"
        f" at {state.get('verified_at', '?')}",
    )
    return verified.checkpoint


def _check_consistency(api: Client, old: Checkpoint, new: Checkpoint, report: _Report) -> bool:
    """Check that ``new`` extends ``old`` (or, if smaller, is a prefix of it).

    Returns whether the state should advance to ``new``.
    """
    from chain.errors import ChainError
    from chain.merkle import verify_consistency

    first, second = (old, new) if old.size <= new.size else (new, old)
    proof = api.consistency_proof(first.size, second.size) if 0 < first.size < second.size else []
    try:
        verify_consistency(first.size, second.size, first.root, second.root, proof)
    except ChainError as e:
        report.add(
            "consistency",
            False,
            f"tree {old.size} -> {new.size}: the ledger is not consistent with the last"
            f" verified checkpoint (forked or rewritten): {e}",
        )
        return False
    if new.size < old.size:
        report.add(
            "consistency",
            True,
            f"the service is behind: its tree {new.size} is a prefix of the verified {old.size}",
        )
        return False
    detail = "same tree" if old.size == new.size else f"tree {old.size} -> {new.size} only grew"
    report.add("consistency", True, detail)
    return True


def _print(report: _Report) -> None:
    marks = {"pass": ("✓", "green"), "fail": ("✗", "red"), "info": ("·", None)}
    for check in report.checks:
        mark, color = marks[check["outcome"]]
        click.echo(f"{click.style(mark, fg=color)} {check['name']}: {check['detail']}")


@click.command("checkpoint")
@click.option("--verify", is_flag=True, help="Check signatures and consistency with history.")
@click.option(
    "--state",
    "state_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State file of the last verified checkpoint (default: under XDG_STATE_HOME).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@client_options(trust=True)
def checkpoint(
    settings: ClientSettings, verify: bool, state_file: Path | None, as_json: bool
) -> None:
    """Print the ledger's latest checkpoint; with --verify, check it like a witness."""
    from chain.checkpoint import inspect_checkpoint, parse_checkpoint
    from chain.errors import ChainError
    from chain.note import parse_note

    trust = _load_trust(settings) if verify else None
    with api_errors(), settings.client() as api:
        note = api.latest_checkpoint()
        if trust is None:
            try:
                parsed = parse_note(note, strict=False)
                cp = parse_checkpoint(parsed.text)
            except ChainError as e:
                fail(FAILED, f"the service's checkpoint is malformed: {e}")
            names = [s.name for s in parsed.signatures]
            if as_json:
                print_json({**_summary(cp), "signatures": names, "note": note})
            else:
                click.echo(
                    f"origin: {cp.origin}\nsize:   {cp.size}\nroot:   {_summary(cp)['root']}"
                )
                click.echo(f"signed: {', '.join(names) or 'nobody'} (not verified; use --verify)")
            return
        report = _Report(checks=[])
        try:
            inspected = inspect_checkpoint(note, trust)
        except ChainError as e:
            report.add("checkpoint", False, f"the service's checkpoint is unusable: {e}")
            _finish(report, as_json)
            return
        cp = report.checkpoint = inspected.checkpoint
        report.add("checkpoint", True, f"{cp.origin}, tree size {cp.size}")
        signers = ", ".join(inspected.signers) or "none"
        report.add(
            "signatures",
            inspected.committed,
            f"{len(inspected.signers)} of {len(inspected.validators)} validators signed"
            f" (threshold {inspected.threshold}): {signers}",
        )
        path = state_file or state_path(trust.chain_id)
        old = _load_state(path, trust, report)
        advance = report.valid
        if report.valid and old is not None:
            advance = _check_consistency(api, old, cp, report)
        if report.valid and advance:
            _save_state(path, trust.chain_id, note, settings.url.value or "")
    _finish(report, as_json)


def _save_state(path: Path, chain_id: str, note: str, url: str) -> None:
    state = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "chain_id": chain_id,
        "checkpoint": note,
        "verified_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "url": url,
    }
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, json.dumps(state, indent=1) + "\n")
    except OSError as e:
        fail(USAGE, f"cannot write state file {path}: {e.strerror or e}")


def _finish(report: _Report, as_json: bool) -> None:
    if as_json:
        summary = _summary(report.checkpoint) if report.checkpoint is not None else None
        print_json({"valid": report.valid, "checkpoint": summary, "checks": report.checks})
    else:
        _print(report)
    if not report.valid:
        failed = next(c for c in report.checks if c["outcome"] == "fail")
        fail(FAILED, f"checkpoint verification failed: {failed['name']}: {failed['detail']}")
