"""``notary verify``: check a receipt offline, with no network and no database.

Exit codes: 0 the receipt is valid for the document; 1 it is not (each failed check
says why); 2 usage error or unreadable input (file, receipt or trust file).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from chain.errors import ChainError
from chain.trust import TrustFile
from notary.verify import DocumentDigest, Outcome, Verdict, verify_receipt

_MARK = {
    Outcome.PASS: ("✓", "green"),
    Outcome.FAIL: ("✗", "red"),
    Outcome.SKIPPED: ("-", "yellow"),
    Outcome.INFO: ("·", None),
}


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as e:
        raise click.ClickException(f"cannot read {what} {path}: {e.strerror or e}") from None


def _digest(file: Path | None, sha256: str | None) -> DocumentDigest:
    if (file is None) == (sha256 is None):
        raise click.UsageError("give either FILE or --sha256 HEX (not both)")
    if sha256 is not None:
        try:
            return DocumentDigest.from_hex(sha256)
        except ValueError:
            raise click.UsageError("--sha256 takes 64 hex digits") from None
    assert file is not None
    try:
        return DocumentDigest.of_file(file)
    except OSError as e:
        raise click.ClickException(f"cannot read file {file}: {e.strerror or e}") from None


def _print(verdict: Verdict) -> None:
    for check in verdict.checks:
        mark, color = _MARK[check.outcome]
        click.echo(f"{click.style(mark, fg=color)} {check.name}: {check.detail}")
    if verdict.valid:
        click.echo(
            click.style("VALID", fg="green", bold=True) + ": the receipt proves this document"
        )
    else:
        click.echo(click.style("INVALID", fg="red", bold=True) + ": see the failed checks above")


@click.command("verify")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--receipt", "receipt_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option(
    "--trust", "trust_path", required=True, type=click.Path(dir_okay=False, path_type=Path)
)
@click.option("--sha256", default=None, help="The document's SHA-256 instead of FILE.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def verify(
    file: Path | None, receipt_path: Path, trust_path: Path, sha256: str | None, as_json: bool
) -> None:
    """Verify a receipt for FILE offline against the validators' trust file."""
    document = _digest(file, sha256)
    receipt = _read(receipt_path, "receipt")
    try:
        trust = TrustFile.loads(_read(trust_path, "trust file"), where=str(trust_path))
    except ChainError as e:
        raise click.ClickException(f"unusable trust file: {e}") from None
    verdict = verify_receipt(document, receipt, trust)
    if as_json:
        checks = [
            {"name": c.name, "outcome": c.outcome.value, "detail": c.detail} for c in verdict.checks
        ]
        click.echo(json.dumps({"valid": verdict.valid, "checks": checks}, indent=1))
    else:
        _print(verdict)
    if not verdict.valid:
        raise click.exceptions.Exit(1)
