"""``notary node run|init`` and ``notary chain status``: running validators and observers.

Thin: parse options, call ``chain.node``, map chain errors to one-line click errors.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import click

from chain.errors import ChainError
from chain.node.client import LedgerClient
from chain.node.config import NodeConfig, load_config, render_config
from chain.node.eventloop import run as run_loop
from chain.node.process import serve


@click.group("node")
def node() -> None:
    """Run a validator or observer node."""


@node.command("run")
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Node config file (TOML).",
)
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level.")
def run(config_path: Path, log_level: str) -> None:
    """Run the node described by --config until SIGTERM/SIGINT."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        config = load_config(config_path)
        run_loop(serve(config))
    except ChainError as e:
        raise click.ClickException(str(e)) from None
    except OSError as e:  # e.g. the port is taken
        raise click.ClickException(f"{config_path}: {e.strerror or e}") from None


@node.command("init")
@click.option("--name", required=True, help="Validator (or observer) name.")
@click.option("--data-dir", required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--trust", "trust_file", required=True, type=click.Path(path_type=Path))
@click.option("--key", "key_file", type=click.Path(path_type=Path), default=None)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=7100, show_default=True, type=int)
@click.option("--observer", is_flag=True, help="Follow the chain without voting.")
@click.option(
    "--out", required=True, type=click.Path(dir_okay=False, path_type=Path), help="Config to write."
)
def init(
    name: str,
    data_dir: Path,
    trust_file: Path,
    key_file: Path | None,
    host: str,
    port: int,
    observer: bool,
    out: Path,
) -> None:
    """Write a node config file (peers default to the trust file's addresses)."""
    if not observer and key_file is None:
        raise click.ClickException("a validator needs --key (or pass --observer)")
    if out.exists():
        raise click.ClickException(f"{out}: file exists")
    config = NodeConfig(
        name=name,
        role="observer" if observer else "validator",
        trust_file=trust_file.resolve(),
        data_dir=data_dir.resolve(),
        key_file=key_file.resolve() if key_file is not None else None,
        host=host,
        port=port,
    )
    out.write_text(render_config(config), encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


@click.group("chain")
def chain() -> None:
    """Query the ledger."""


@chain.command("status")
@click.option("--url", default="http://127.0.0.1:7100", show_default=True, help="Node URL.")
@click.option("--ca", type=click.Path(dir_okay=False, path_type=Path), default=None)
def status(url: str, ca: Path | None) -> None:
    """Print a node's status (height, view, tree size, peers up) as JSON."""

    async def fetch() -> dict[str, object]:
        async with LedgerClient([url], ca=ca, busy_retries=0) as client:
            return await client.status()

    try:
        result = asyncio.run(fetch())
    except ChainError as e:
        raise click.ClickException(str(e)) from None
    result.pop("latest_checkpoint", None)
    click.echo(json.dumps(result, indent=2))
