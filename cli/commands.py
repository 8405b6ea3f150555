"""The click command tree of ``notary``; each command is a thin call into a library."""

from __future__ import annotations

import click

from cli import keys as keys_commands
from cli import node as node_commands
from cli import serve as serve_commands
from cli import verify as verify_commands


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evidence-notary", prog_name="notary")
def root() -> None:
    """Evidence notary: erasure-coded storage, BFT-anchored receipts, offline verification."""


root.add_command(keys_commands.keygen)
root.add_command(keys_commands.genesis)
root.add_command(verify_commands.verify)
root.add_command(serve_commands.serve)
root.add_command(serve_commands.db)
root.add_command(node_commands.node)
root.add_command(node_commands.chain)
