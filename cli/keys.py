"""``notary keygen`` and ``notary genesis``: validator keys and the trust file.

Thin: parse options, call ``chain.keys`` / ``chain.trust``, map their errors to
one-line ``click.ClickException``s (exit code 2, see ``cli.main``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from chain.errors import ChainError
from chain.keys import Signer
from chain.trust import TrustFile, Validator, make_genesis


def _record_text(validator: Validator) -> str:
    return json.dumps(validator.to_record(), indent=2, ensure_ascii=False) + "\n"


@click.command("keygen")
@click.option("--name", required=True, help="Validator name (signed-note key name).")
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Private key file to write (mode 0600).",
)
@click.option("--address", default="", help="Peer address of the validator (http(s) URL).")
@click.option(
    "--public-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the public validator record here instead of stdout.",
)
@click.option("--force", is_flag=True, help="Overwrite existing output files.")
def keygen(name: str, out: Path, address: str, public_out: Path | None, force: bool) -> None:
    """Generate a validator key; print its public record (JSON) for the genesis."""
    try:
        signer = Signer.generate(name)
        # Build the public record first: a bad address must not leave a key file behind.
        validator = Validator(name=signer.name, public_key=signer.public_key, address=address)
        if public_out is not None and public_out.exists() and not force:
            raise click.ClickException(f"{public_out}: file exists (use --force to overwrite)")
        signer.save(out, overwrite=force)
    except ChainError as e:
        raise click.ClickException(str(e)) from None
    record = _record_text(validator)
    if public_out is None:
        click.echo(record, nl=False)
        return
    try:
        public_out.write_text(record, encoding="utf-8")
    except OSError as e:
        raise click.ClickException(f"{public_out}: cannot write: {e.strerror or e}") from None
    click.echo(f"wrote {out} (private, 0600) and {public_out} (public record)", err=True)


@click.command("genesis")
@click.option("--chain-id", required=True, help="Chain id: the origin line of checkpoints.")
@click.argument(
    "records",
    nargs=-1,
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
)
@click.option(
    "--out",
    "out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Trust file to write.",
)
@click.option(
    "--threshold",
    type=int,
    default=None,
    help="Signatures that commit a checkpoint (default: 2f+1 for n = 3f+1).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing trust file.")
def genesis(
    chain_id: str, records: tuple[Path, ...], out: Path, threshold: int | None, force: bool
) -> None:
    """Assemble the trust file from validators' public records (in the given order)."""
    validators = []
    for path in records:
        if str(path) == "-":
            text = sys.stdin.read()
        else:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as e:
                reason = getattr(e, "strerror", None) or e
                raise click.ClickException(f"{path}: cannot read: {reason}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise click.ClickException(f"{path}: not a JSON validator record") from None
        try:
            validators.append(Validator.from_record(data, str(path)))
        except ChainError as e:
            raise click.ClickException(str(e)) from None
    if out.exists() and not force:
        raise click.ClickException(f"{out}: file exists (use --force to overwrite)")
    try:
        trust: TrustFile = make_genesis(chain_id, validators, threshold)
        trust.save(out)
    except ChainError as e:
        raise click.ClickException(str(e)) from None
    click.echo(
        f"wrote {out}: chain {trust.chain_id}, n={trust.n}, f={trust.f},"
        f" threshold={trust.threshold}"
    )
