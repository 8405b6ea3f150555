"""Entry point of the ``notary`` command.

Exit codes: 0 success; 1 the operation ran and failed (for example an invalid
receipt); 2 usage error or unreadable input; 3 a storage or service error.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from cli import commands


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    try:
        # Without standalone mode, click returns a command's Exit code instead of raising.
        result = commands.root.main(
            args=list(argv) if argv is not None else None, standalone_mode=False
        )
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.exceptions.Abort:
        click.echo("notary: aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"notary: {e.format_message()}", err=True)
        return 2
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
