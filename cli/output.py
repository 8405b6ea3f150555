"""How client commands end and report: exit codes, one-line errors, JSON, progress bars.

Exit codes (see ``cli.main``): 0 ok; 1 the operation ran and failed (a checkpoint that
does not verify, a ledger that is not consistent with the last verified one); 2 usage
error or unreadable input; 3 the service or storage failed (unreachable, a 5xx, any
problem document from the service, bytes that do not match their digest).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

if TYPE_CHECKING:
    from rich.progress import Progress

OK, FAILED, USAGE, SERVICE = 0, 1, 2, 3


def fail(code: int, message: str) -> NoReturn:
    """Print ``notary: <message>`` on stderr and end the command with exit ``code``."""
    click.echo(f"notary: {message}", err=True)
    raise click.exceptions.Exit(code)


@contextlib.contextmanager
def api_errors() -> Iterator[None]:
    """Map client errors to exit codes: ApiError -> 3, ClientConfigError, SourceError -> 2."""
    from cli.client import ApiError, ClientConfigError, SourceError

    try:
        yield
    except ApiError as e:
        fail(SERVICE, str(e))
    except (ClientConfigError, SourceError) as e:
        fail(USAGE, str(e))


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON on stdout."""
    click.echo(json.dumps(value, indent=1, ensure_ascii=False))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename,
    so a reader never sees half a file and a failure leaves the old file intact."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        Path(tmp).replace(path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def progress() -> Progress:
    """A rich progress display on stderr (stdout stays clean for ``--json``); hidden when
    stderr is not a terminal."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(file=sys.stderr)
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not console.is_terminal,
        transient=False,
    )
