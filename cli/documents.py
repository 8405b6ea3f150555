"""``notary upload``, ``get``, ``receipt`` and ``status``: documents over the HTTP API.

Thin: check the input (files, ids, output paths) before any request, call
:class:`cli.client.Client`, write results atomically, map errors to exit codes
(:mod:`cli.output`). Progress bars go to stderr; ``--json`` output to stdout.
"""

from __future__ import annotations

import contextlib
import mimetypes
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from cli.output import FAILED, SERVICE, USAGE, api_errors, fail, print_json, progress
from cli.output import write_atomically as _write_atomically
from cli.settings import ClientSettings, client_options

KINDS = ("filing", "disclosure", "transfer_agreement", "broker_log", "dd_draft")
RECEIPT_SUFFIX = ".receipt.json"

_JSON = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")


def _doc_id(doc_id: str) -> str:
    from cli.client import ClientConfigError, check_doc_id

    try:
        return check_doc_id(doc_id)
    except ClientConfigError as e:
        fail(USAGE, str(e))


@dataclass
class _Upload:
    path: Path
    size: int
    receipt_path: Path | None
    document: dict[str, Any] | None = None
    receipt: Path | None = None
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        doc = self.document or {}
        return {
            "file": str(self.path),
            "id": doc.get("id"),
            "sha256": doc.get("sha256"),
            "size": self.size,
            "status": doc.get("status"),
            "version": doc.get("version"),
            "receipt": str(self.receipt) if self.receipt else None,
            "error": self.error,
        }


def _plan(files: tuple[Path, ...], wait: bool, receipt_dir: Path | None) -> list[_Upload]:
    """Check every file and receipt path before the first byte is sent."""
    plans: list[_Upload] = []
    seen: dict[Path, Path] = {}
    for path in files:
        try:
            with path.open("rb"):
                pass
            size = path.stat().st_size
        except IsADirectoryError:
            fail(USAGE, f"{path}: is a directory")
        except OSError as e:
            fail(USAGE, f"cannot read {path}: {e.strerror or e}")
        receipt_path = None
        if wait:
            folder = receipt_dir if receipt_dir is not None else path.parent
            receipt_path = folder / (path.name + RECEIPT_SUFFIX)
            key = receipt_path.resolve()
            if key in seen:
                fail(USAGE, f"{seen[key]} and {path} would both write {receipt_path}")
            seen[key] = path
            if receipt_path.exists():
                fail(USAGE, f"{receipt_path} exists; move it away first (receipts are evidence)")
        plans.append(_Upload(path=path, size=size, receipt_path=receipt_path))
    return plans


@click.command("upload")
@click.argument(
    "files", nargs=-1, required=True, metavar="FILE...", type=click.Path(path_type=Path)
)
@click.option("--kind", required=True, type=click.Choice(KINDS), help="What the documents are.")
@click.option(
    "--title", default=None, metavar="T", help="Title (kept in the index, never anchored)."
)
@click.option("--project", default=None, metavar="P", help="Project or case reference.")
@click.option(
    "--supersedes", default=None, metavar="ID", help="Id of the version this one replaces."
)
@click.option(
    "--confidential",
    is_flag=True,
    help="Seal the content (AES-256-GCM) before it is stored; dd_draft is always sealed.",
)
@click.option("--wait", is_flag=True, help="Wait until anchored and write each receipt.")
@click.option(
    "--receipt-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="With --wait: write receipts here (default: next to each file).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=300.0,
    show_default=True,
    help="With --wait: seconds to wait for anchoring.",
)
@_JSON
@client_options()
def upload(
    settings: ClientSettings,
    files: tuple[Path, ...],
    kind: str,
    title: str | None,
    project: str | None,
    supersedes: str | None,
    confidential: bool,
    wait: bool,
    receipt_dir: Path | None,
    timeout: float,
    as_json: bool,
) -> None:
    """Upload FILE... (streamed); with --wait, write FILE.receipt.json for each."""
    if supersedes is not None:
        _doc_id(supersedes)
        if len(files) > 1:
            fail(USAGE, "--supersedes takes a single FILE")
    if receipt_dir is not None and not wait:
        fail(USAGE, "--receipt-dir needs --wait")
    if receipt_dir is not None:
        try:
            receipt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            fail(USAGE, f"cannot create {receipt_dir}: {e.strerror or e}")
    plans = _plan(files, wait, receipt_dir)
    from cli.client import ApiError, SourceError

    failure: tuple[int, str] | None = None
    with api_errors(), settings.client() as api:
        with progress() as bars:
            overall = bars.add_task("total", total=sum(p.size for p in plans))
            for plan in plans:
                task = bars.add_task(plan.path.name, total=plan.size)

                def advance(n: int, task: Any = task) -> None:
                    bars.advance(task, n)
                    bars.advance(overall, n)

                try:
                    with plan.path.open("rb") as source:
                        plan.document = api.upload(
                            source,
                            size=plan.size,
                            kind=kind,
                            title=title,
                            filename=plan.path.name,
                            media_type=mimetypes.guess_type(plan.path.name)[0],
                            project=project,
                            supersedes=supersedes,
                            confidential=confidential,
                            on_progress=advance,
                        )
                except ApiError as e:
                    plan.error, failure = str(e), (SERVICE, f"{plan.path}: {e}")
                    break  # the rest waits for the user; nothing already sent is lost
                except (SourceError, OSError) as e:
                    reason = getattr(e, "strerror", None) or e
                    plan.error, failure = str(reason), (USAGE, f"cannot read {plan.path}: {reason}")
                    break
        if wait:
            deadline = time.monotonic() + timeout
            for plan in plans:
                if plan.document is None or plan.receipt_path is None:
                    continue
                try:
                    left = max(deadline - time.monotonic(), 0.1)
                    plan.document = api.wait_anchored(plan.document["id"], left)
                    text = api.receipt(plan.document["id"])
                except ApiError as e:
                    plan.error, failure = str(e), failure or (SERVICE, f"{plan.path}: {e}")
                    continue
                _write_receipt(plan.receipt_path, text)
                plan.receipt = plan.receipt_path
    _report_uploads(plans, as_json)
    if failure is not None:
        fail(*failure)


def _write_receipt(path: Path, text: str) -> None:
    try:
        _write_atomically(path, text if text.endswith("\n") else text + "\n")
    except OSError as e:
        fail(USAGE, f"cannot write {path}: {e.strerror or e}")


def _report_uploads(plans: list[_Upload], as_json: bool) -> None:
    if as_json:
        print_json([p.to_json() for p in plans])
        return
    for p in plans:
        if p.document is None:
            if p.error is not None:
                click.echo(f"{p.path}: not uploaded: {p.error}")
            continue
        line = f"{p.path}: {p.document['id']} {p.document.get('status')}"
        if p.receipt is not None:
            line += f", receipt {p.receipt}"
        elif p.error is not None:
            line += f", no receipt: {p.error}"
        click.echo(line)


@contextlib.contextmanager
def _temporary_beside(target: Path) -> Iterator[tuple[Any, Path]]:
    """A temporary file in ``target``'s folder, removed unless the caller renamed it."""
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f, tmp
    finally:
        tmp.unlink(missing_ok=True)


@click.command("get")
@click.argument("doc_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@_JSON
@client_options()
def get(settings: ClientSettings, doc_id: str, output: Path, force: bool, as_json: bool) -> None:
    """Download document ID to a file; its SHA-256 is checked before the file appears."""
    _doc_id(doc_id)
    if output.exists() and not force:
        fail(USAGE, f"{output} exists (use --force to overwrite)")
    if not output.parent.is_dir():
        fail(USAGE, f"{output.parent} is not a folder")
    with api_errors(), settings.client() as api:
        doc = api.document(doc_id)
        expected = doc.get("sha256")
        if not expected:
            fail(SERVICE, f"document {doc_id} is {doc.get('status')}: no content yet")
        try:
            with _temporary_beside(output) as (sink, tmp), progress() as bars:
                task = bars.add_task(output.name, total=doc.get("size"))
                result = api.download(
                    doc_id,
                    sink,
                    expected_sha256=expected,
                    on_progress=lambda n: bars.advance(task, n),
                )
                sink.flush()
                os.fsync(sink.fileno())
                tmp.replace(output)
        except OSError as e:
            fail(USAGE, f"cannot write {output}: {e.strerror or e}")
    if as_json:
        print_json(
            {"id": doc_id, "file": str(output), "size": result.size, "sha256": result.sha256}
        )
    else:
        click.echo(f"wrote {output}: {result.size} bytes, SHA-256 {result.sha256} (verified)")


@click.command("receipt")
@click.argument("doc_id", metavar="ID")
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Receipt file to write.",
)
@click.option(
    "--refresh",
    is_flag=True,
    help="Replace an existing receipt with one against the latest checkpoint, after "
    "checking that the new checkpoint extends the old one.",
)
@_JSON
@client_options()
def receipt(
    settings: ClientSettings, doc_id: str, output: Path, refresh: bool, as_json: bool
) -> None:
    """Fetch the receipt of document ID (against the latest checkpoint) into a file."""
    from notary.receipt import ReceiptFormatError, parse_receipt

    _doc_id(doc_id)
    old = None
    if output.exists():
        if not refresh:
            fail(USAGE, f"{output} exists (use --refresh to update it)")
        try:
            old = parse_receipt(output.read_bytes())
        except OSError as e:
            fail(USAGE, f"cannot read {output}: {e.strerror or e}")
        except ReceiptFormatError as e:
            fail(USAGE, f"{output} is not a receipt: {e}")
    elif not output.parent.is_dir():
        fail(USAGE, f"{output.parent} is not a folder")
    with api_errors(), settings.client() as api:
        text = api.receipt(doc_id)
        try:
            new = parse_receipt(text)
        except ReceiptFormatError as e:
            fail(SERVICE, f"the service sent an invalid receipt: {e}")
        extends = None
        if old is not None:
            if (old.document_sha256, old.salt) != (new.document_sha256, new.salt):
                fail(USAGE, f"{output} is the receipt of another document")
            extends = _check_extends(api, old.checkpoint, new.checkpoint)
    _write_receipt(output, text if text.endswith("\n") else text + "\n")
    if as_json:
        print_json(
            {
                "id": doc_id,
                "file": str(output),
                "tree_size": new.tree_size,
                "previous_tree_size": old.tree_size if old is not None else None,
                "consistency": extends,
            }
        )
    elif old is not None:
        click.echo(f"wrote {output}: tree size {old.tree_size} -> {new.tree_size} ({extends})")
    else:
        click.echo(f"wrote {output}: tree size {new.tree_size}")


def _check_extends(api: Any, old_note: str, new_note: str) -> str:
    """Check that the new checkpoint's tree extends the old one's; exit 1 if not."""
    from chain.checkpoint import parse_checkpoint
    from chain.errors import ChainError
    from chain.merkle import verify_consistency
    from chain.note import parse_note

    try:
        old = parse_checkpoint(parse_note(old_note, strict=False).text)
        new = parse_checkpoint(parse_note(new_note, strict=False).text)
    except ChainError as e:
        fail(FAILED, f"unusable checkpoint in a receipt: {e}")
    if new.size < old.size:
        fail(FAILED, f"the service's checkpoint (size {new.size}) is older than the receipt's")
    proof = api.consistency_proof(old.size, new.size) if old.size < new.size else []
    try:
        verify_consistency(old.size, new.size, old.root, new.root, proof)
    except ChainError as e:
        fail(FAILED, f"the new checkpoint does not extend the receipt's: {e}")
    return "consistent" if proof else "same checkpoint"


_STATUS_FIELDS = (
    "id",
    "kind",
    "status",
    "version",
    "title",
    "filename",
    "media_type",
    "project",
    "supersedes",
    "size",
    "sha256",
    "leaf_index",
    "block_height",
    "created_at",
    "anchored_at",
)


@click.command("status")
@click.argument("doc_id", metavar="ID")
@_JSON
@client_options()
def status(settings: ClientSettings, doc_id: str, as_json: bool) -> None:
    """Print the metadata and anchoring status of document ID."""
    _doc_id(doc_id)
    with api_errors(), settings.client() as api:
        doc = api.document(doc_id)
    if as_json:
        print_json(doc)
        return
    for name in _STATUS_FIELDS:
        if doc.get(name) is not None:
            click.echo(f"{name + ':':14}{doc[name]}")
