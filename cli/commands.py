"""The click command tree of ``notary``; each command is a thin call into a library.

Commands are registered lazily, as ``"module:attribute"``: a command's module is
imported only when that command runs (or when help lists it), so ``notary verify``
never imports aiohttp, SQLAlchemy or pyeclib and starts fast. Register a new command
with one line: ``root.lazy("name", "cli.module:command")``.
"""

from __future__ import annotations

import importlib

import click


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self._lazy: dict[str, str] = {}

    def lazy(self, name: str, target: str) -> None:
        """Register the command ``name`` found at ``target`` (``"package.module:attr"``)."""
        self._lazy[name] = target

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = self._lazy.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module, _, attr = target.partition(":")
        command = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command), target
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="evidence-notary", prog_name="notary")
def root() -> None:
    """Evidence notary: erasure-coded storage, BFT-anchored receipts, offline verification."""


assert isinstance(root, LazyGroup)
root.lazy("keygen", "cli.keys:keygen")
root.lazy("genesis", "cli.keys:genesis")
root.lazy("verify", "cli.verify:verify")
root.lazy("serve", "cli.serve:serve")
root.lazy("db", "cli.serve:db")
root.lazy("token", "cli.tokens:token")
root.lazy("node", "cli.node:node")
root.lazy("chain", "cli.node:chain")
root.lazy("upload", "cli.documents:upload")
root.lazy("get", "cli.documents:get")
root.lazy("receipt", "cli.documents:receipt")
root.lazy("status", "cli.documents:status")
root.lazy("checkpoint", "cli.checkpoint:checkpoint")
root.lazy("config", "cli.settings:config")
root.lazy("logs", "cli.logs.commands:logs")
