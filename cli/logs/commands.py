"""The ``notary logs`` commands: push, verify, status (docs/log-streams.md).

Exit codes: 0 ok; 1 ``verify`` found a break; 2 usage error or unreadable input (bad
flag, missing file, unusable trust file, damaged state, stream already pushed from
elsewhere); 3 the service failed or refused (unreachable for ``verify``/``status``, a
refused segment, spool full while the service is unreachable, not anchored in time).
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import click

from cli.output import fail, print_json
from cli.settings import ClientSettings, client_options

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from cli.client import Client
    from cli.logs.push import StreamPusher

STREAM_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Names a rotated log takes (app.log.1, app.log.2.gz, app.log-20260101): skipped when a
# folder is pushed, so rotation does not start a second copy of a stream.
ROTATED_NAME = re.compile(r".*(\.\d+|\.gz|\.bz2|\.xz|\.zst|[-_.]\d{8}(\d{2,6})?)$")
_SIZE = re.compile(r"(\d+)\s*([KMG]i?B?|B)?", re.IGNORECASE)
_UNITS = {"": 1, "B": 1, "K": 1024, "M": 1024**2, "G": 1024**3}
# How often ``push --follow`` looks for new files in its globs and folders (seconds).
DISCOVER_EVERY = 0.5


class Size(click.ParamType):  # type: ignore[type-arg]
    """A byte count: 4096, 64KiB, 1MiB, 1G."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.fullmatch(str(value).strip())
        if match is None:
            self.fail(f"{value!r} is not a size (e.g. 4096, 64KiB, 1MiB)", param, ctx)
        unit = (match.group(2) or "").upper()[:1]
        return int(match.group(1)) * _UNITS[unit]


@click.group("logs")
def logs() -> None:
    """Broker logs as anchored hash chains of segments: push, verify, status."""


def _state_dir(value: Path | None) -> Path:
    from cli.logs.state import default_state_dir

    return value if value is not None else default_state_dir()


_STATE_DIR = click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="NOTARY_LOGS_STATE_DIR",
    help="Local state and spool [env NOTARY_LOGS_STATE_DIR; $XDG_STATE_HOME/notary/logs].",
)


def _is_pattern(path: str) -> bool:
    return any(c in path for c in "*?[")


def _log_files(folder: Path) -> list[Path]:
    """A folder's log files: regular, not hidden, not a rotated name."""
    return sorted(
        e
        for e in folder.iterdir()
        if e.is_file() and not e.name.startswith(".") and not ROTATED_NAME.fullmatch(e.name)
    )


def stream_name(stream: str, file: Path) -> str:
    """The stream of ``file`` when several files are pushed: ``stream.<file name>``."""
    return f"{stream}.{re.sub(r'[^A-Za-z0-9._-]', '_', file.name)}"[:128]


def expand_sources(paths: tuple[str, ...], stream: str, follow: bool) -> list[tuple[Path, str]]:
    """The files to push and their stream names (the naming rule of docs/log-streams.md):
    one file -> ``stream``; several files, a folder or a glob -> ``stream.<file name>``
    each (characters outside [A-Za-z0-9._-] become ``_``). Exit 2 on a missing file."""
    if not STREAM_NAME.fullmatch(stream):
        fail(
            2,
            f"invalid stream name {stream!r}: 1-128 letters, digits and ._- "
            "(letter or digit first)",
        )
    files: list[Path] = []
    expanded = False
    for p in paths:
        if _is_pattern(p):
            matches = sorted(Path(m) for m in glob.glob(p) if Path(m).is_file())  # noqa: PTH207
            if not matches:
                fail(2, f"no file matches {p}")
            files.extend(matches)
            expanded = True
        elif Path(p).is_dir():
            found = _log_files(Path(p))
            if not found:
                fail(2, f"folder {p} holds no log file")
            files.extend(found)
            expanded = True
        else:
            path = Path(p)
            if path.exists() and not path.is_file():
                fail(2, f"{p} is not a regular file")
            if not path.exists() and not follow:
                fail(2, f"cannot read {p}: No such file or directory")
            if path.exists() and not os.access(path, os.R_OK):
                fail(2, f"cannot read {p}: Permission denied")
            files.append(path)
    if len(files) == 1 and not expanded:
        return [(files[0], stream)]
    out: list[tuple[Path, str]] = []
    seen: dict[str, Path] = {}
    for f in files:
        name = stream_name(stream, f)
        if name in seen and seen[name].resolve() != f.resolve():
            fail(2, f"{seen[name]} and {f} would both be stream {name}: push them separately")
        if name not in seen:
            seen[name] = f
            out.append((f, name))
    return out


class Discovery:
    """New files of the globs and folders among ``paths``, found while following: each
    is its own stream by the naming rule. Rotated names (``app.log.1``, ``.gz``, a date)
    and hidden files are not new logs: the follower of the original path reads them."""

    def __init__(self, paths: tuple[str, ...], stream: str, known: list[tuple[Path, str]]):
        self.patterns = [p for p in paths if _is_pattern(p) or Path(p).is_dir()]
        self.stream = stream
        self.names: dict[str, Path] = {name: path.resolve() for path, name in known}
        self.warned: set[str] = set()

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def scan(self) -> tuple[list[tuple[Path, str]], list[str]]:
        """(the files not seen before and their streams, warnings about clashes)."""
        found: list[Path] = []
        for p in self.patterns:
            try:
                if _is_pattern(p):
                    found.extend(
                        f
                        for f in sorted(Path(m) for m in glob.glob(p))  # noqa: PTH207
                        if f.is_file()
                        and not f.name.startswith(".")
                        and not ROTATED_NAME.fullmatch(f.name)
                    )
                else:
                    found.extend(_log_files(Path(p)))
            except OSError:
                continue  # a folder gone for now: look again next time
        new: list[tuple[Path, str]] = []
        warnings: list[str] = []
        for f in found:
            name, real = stream_name(self.stream, f), f.resolve()
            known = self.names.get(name)
            if known is None:
                self.names[name] = real
                new.append((f, name))
            elif known != real and name not in self.warned:
                self.warned.add(name)
                warnings.append(f"{f} would be stream {name} like {known}: not pushed")
        return new, warnings


class _Bars:
    """Progress of a push on stderr (a bar per file and one overall), when stderr is a
    terminal and the output is not JSON; otherwise nothing is shown."""

    def __init__(self, bars: Progress | None) -> None:
        self._bars = bars
        self._tasks: dict[int, TaskID] = {}
        self._overall: TaskID | None = None

    def refresh(self, pushers: list[StreamPusher]) -> None:
        """Show each pusher's acknowledged bytes of its file, and their sum."""
        if self._bars is None:
            return
        done_all = total_all = 0
        for p in pushers:
            done, total = p.progress()
            done_all, total_all = done_all + done, total_all + total
            task = self._tasks.get(id(p))
            if task is None:
                task = self._tasks[id(p)] = self._bars.add_task(p.stream, total=total)
            self._bars.update(
                task, completed=done, total=total, description=f"{p.stream} ({p.phase})"
            )
        if len(pushers) > 1:
            if self._overall is None:
                self._overall = self._bars.add_task("all", total=total_all)
            self._bars.update(self._overall, completed=done_all, total=total_all)


@contextlib.contextmanager
def _bars(pushers: list[StreamPusher], *, enabled: bool) -> Iterator[_Bars]:
    from cli.output import progress

    display = progress() if enabled else None
    if display is None or display.disable:
        yield _Bars(None)
        return
    with display:
        yield _Bars(display)


@logs.command("push")
@click.argument("paths", nargs=-1, required=True)
@click.option("--stream", "stream", required=True, help="Stream name (a prefix for several files).")
@click.option("--follow", "-f", is_flag=True, help="Keep reading as the files grow (tail -F).")
@click.option(
    "--segment-bytes", type=Size(), default="1MiB", show_default=True, help="Segment size limit."
)
@click.option(
    "--segment-seconds",
    type=click.FloatRange(min=0.01),
    default=10.0,
    show_default=True,
    help="Cut a segment once its oldest line is this old.",
)
@click.option(
    "--spool-bytes", type=Size(), default="1GiB", show_default=True, help="Spool size limit."
)
@click.option("--no-wait", is_flag=True, help="Do not wait until the segments are anchored.")
@click.option(
    "--wait-timeout",
    type=click.FloatRange(min=0),
    default=600.0,
    show_default=True,
    help="Seconds to wait for anchoring.",
)
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
@client_options()
def push(
    settings: ClientSettings,
    paths: tuple[str, ...],
    stream: str,
    follow: bool,
    segment_bytes: int,
    segment_seconds: float,
    spool_bytes: int,
    no_wait: bool,
    wait_timeout: float,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Push log files to anchored streams, resuming where the last push stopped.

    Each PATH (a file, a folder or a glob) is read line by line and cut into segments;
    each segment is stored and anchored as the next link of the stream's hash chain.
    """
    from cli.client import ClientConfigError
    from cli.logs.push import PushError, PushOptions, PushResult, StreamPusher
    from cli.logs.segmenter import DEFAULT_MAX_LINE_BYTES
    from cli.logs.state import StateError

    if not 1 <= segment_bytes <= DEFAULT_MAX_LINE_BYTES:
        fail(2, f"--segment-bytes must be between 1 and {DEFAULT_MAX_LINE_BYTES}")
    if spool_bytes < 2 * segment_bytes:
        fail(2, "--spool-bytes must be at least twice --segment-bytes")
    sources = expand_sources(paths, stream, follow)
    try:
        settings.client().close()  # a bad URL or CA file is a usage error, now
    except ClientConfigError as e:
        fail(2, str(e))
    url = settings.url.value or ""
    options = PushOptions(
        segment_bytes=segment_bytes,
        segment_seconds=segment_seconds,
        spool_bytes=spool_bytes,
        follow=follow,
        wait=not no_wait,
        wait_timeout=wait_timeout,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)

    def make_client() -> Client:
        return settings.client(timeout=120)

    def warn(line: str) -> None:
        click.echo(f"notary: warning: {line}", err=True)

    def make_pusher(path: Path, name: str) -> StreamPusher:
        folder = _state_dir(state_dir)
        return StreamPusher(path, name, url, folder, options, make_client, stop, warn)

    pushers = [make_pusher(path, name) for path, name in sources]
    errors: list[BaseException] = []
    results: list[PushResult] = []

    def run(pusher: StreamPusher) -> None:
        try:
            results.append(pusher.run())
        except BaseException as e:  # reported below, the other streams stop too
            errors.append(e)
            stop.set()

    threads: list[threading.Thread] = []

    def start(p: StreamPusher) -> None:
        thread = threading.Thread(target=run, args=(p,), daemon=True)
        threads.append(thread)
        thread.start()

    for p in pushers:
        start(p)
    discovery = Discovery(paths, stream, sources) if follow else None
    next_scan = time.monotonic() + DISCOVER_EVERY
    with _bars(pushers, enabled=not as_json) as bars:
        while alive := [t for t in threads if t.is_alive()]:
            alive[0].join(0.2)  # short joins keep the main thread free for signal handlers
            bars.refresh(pushers)
            if discovery and not stop.is_set() and time.monotonic() >= next_scan:
                new, clashes = discovery.scan()
                for line in clashes:
                    warn(line)
                for path, name in new:
                    pushers.append(make_pusher(path, name))
                    start(pushers[-1])
                next_scan = time.monotonic() + DISCOVER_EVERY
        bars.refresh(pushers)
    for err in errors:
        if isinstance(err, PushError):
            fail(err.exit_code, str(err))
        if isinstance(err, StateError):
            fail(2, str(err))
        if isinstance(err, OSError):
            fail(2, f"cannot read {getattr(err, 'filename', '')}: {err.strerror or err}")
        raise err
    for r in results:
        for note in r.notes:
            click.echo(f"notary: {note}", err=True)
    if as_json:
        print_json({"streams": [r.to_json() for r in results]})
        return
    for r in sorted(results, key=lambda r: r.stream):
        anchored = f", anchored through seq {r.anchored_seq}" if r.anchored_seq >= 0 else ""
        click.echo(
            f"{r.stream}: {r.segments} segments ({r.bytes} bytes) sent from {r.path}; "
            f"head seq {r.head_seq}{anchored}"
        )


def _segments(client: Client, stream: str, params: dict[str, str | None]) -> list[dict[str, Any]]:
    from urllib.parse import quote

    items: list[dict[str, Any]] = []
    # Receipts are about 1.5 KB each: pages of 200 stay well under the client's limit.
    query = {"limit": "200", **params}
    while True:
        page = client.get_json(f"/v1/streams/{quote(stream, safe='')}/segments", params=query)
        batch = page.get("segments") or []
        items.extend(batch)
        if not page.get("more") or not batch:
            return items
        query["from_seq"] = str(int(batch[-1]["seq"]) + 1)


@logs.command("verify")
@click.option("--stream", "stream", required=True, help="Stream name.")
@click.option("--from", "from_time", default=None, help="Segments cut at or after (ISO 8601).")
@click.option("--to", "to_time", default=None, help="Segments cut before (ISO 8601).")
@click.option(
    "--against",
    "against",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Check that this file holds exactly the anchored bytes.",
)
@click.option(
    "--against-offset",
    type=click.IntRange(min=0),
    default=0,
    help="Stream offset of the file's first byte (for a rotated part).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@client_options(trust=True)
def verify(
    settings: ClientSettings,
    stream: str,
    from_time: str | None,
    to_time: str | None,
    against: Path | None,
    against_offset: int,
    as_json: bool,
) -> None:
    """Prove a stream complete and untouched: no missing seq, every chain link, every
    receipt against the trust file; with --against, the file's bytes too."""
    from datetime import datetime
    from urllib.parse import quote

    from chain.errors import ChainError
    from chain.trust import TrustFile
    from cli.client import ApiError, ClientConfigError
    from cli.logs.verify import check_content, check_stream

    if not STREAM_NAME.fullmatch(stream):
        fail(2, f"invalid stream name {stream!r}")
    for flag, value in (("--from", from_time), ("--to", to_time)):
        if value is not None:
            try:
                parsed = datetime.fromisoformat(value)
            except ValueError:
                parsed = None
            if parsed is None or parsed.tzinfo is None:
                fail(2, f"{flag} takes an ISO 8601 time with a zone, e.g. 2026-01-02T00:00:00Z")
    trust_path = settings.path("trust")
    if trust_path is None:
        fail(2, "--trust TRUST is required (or NOTARY_TRUST, or trust in the config file)")
    try:
        trust = TrustFile.loads(trust_path.read_bytes(), where=str(trust_path))
    except OSError as e:
        fail(2, f"cannot read trust file {trust_path}: {e.strerror or e}")
    except ChainError as e:
        fail(2, f"unusable trust file: {e}")
    file = None
    if against is not None:
        try:
            file = against.open("rb")
        except OSError as e:
            fail(2, f"cannot read {against}: {e.strerror or e}")
    try:
        client = settings.client()
    except ClientConfigError as e:
        fail(2, str(e))
    try:
        head = client.get_json(f"/v1/streams/{quote(stream, safe='')}")
        params: dict[str, str | None] = {
            "receipts": "true",
            "from_time": from_time,
            "to_time": to_time,
        }
        items = _segments(client, stream, params)
        previous = None
        if items and int(items[0]["seq"]) > 0:
            seq = str(int(items[0]["seq"]) - 1)
            before = _segments(client, stream, {"receipts": "true", "from_seq": seq, "to_seq": seq})
            previous = before[0] if before else None
    except ApiError as e:
        fail(3, str(e))

    report, verified = check_stream(stream, str(head.get("id")), items, trust, previous=previous)
    if file is not None and not report.breaks:

        def fetch(item: dict[str, Any]) -> bytes | None:
            import io

            sink = io.BytesIO()
            try:
                client.download(item["document_id"], sink)
            except ApiError:
                return None
            return sink.getvalue()

        with file:
            check_content(
                report,
                verified,
                file,
                str(against),
                base=against_offset,
                exact_end=to_time is None,
                fetch=fetch,
            )
    if as_json:
        print_json(report.to_json())
    else:
        _print_report(report, str(trust_path))
    if not report.valid:
        raise click.exceptions.Exit(1)


def _print_report(report: Any, trust_name: str) -> None:
    ok = click.style("✓", fg="green")
    bad = click.style("✗", fg="red")
    if report.segments == 0:
        click.echo(f"{bad} stream {report.stream}: no segment in the range asked")
        click.echo(click.style("INVALID", fg="red", bold=True) + ": nothing to prove")
        return
    click.echo(
        f"stream {report.stream} (id {report.stream_id}): segments {report.first_seq}.."
        f"{report.last_seq}, stream bytes {report.start}..{report.end}"
    )
    if not report.breaks:
        click.echo(f"{ok} continuity: {report.segments} segments, no seq missing")
        click.echo(f"{ok} chain: every segment links to the one before")
        click.echo(
            f"{ok} receipts: every segment anchored, checkpoint of tree size "
            f"{report.tree_size} signed by enough validators of {trust_name}"
        )
        if report.against:
            click.echo(f"{ok} content: {report.against} is exactly the anchored bytes")
        click.echo(
            click.style("VALID", fg="green", bold=True) + ": the stream is complete and untouched"
        )
        return
    first = report.breaks[0]
    click.echo(f"{bad} first break: {first.line()}")
    for b in report.breaks[1:]:
        click.echo(f"{bad} then: {b.line()}")
    click.echo(click.style("INVALID", fg="red", bold=True) + ": see the first break above")


@logs.command("status")
@_STATE_DIR
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
@client_options()
def status(settings: ClientSettings, state_dir: Path | None, as_json: bool) -> None:
    """Streams pushed from here and at the service: heads, lag, spool size."""
    from cli.client import ApiError, ClientConfigError
    from cli.logs.state import StateError, load_state, service_key

    url = settings.url.value or ""
    root = _state_dir(state_dir) / service_key(url)
    rows: dict[str, dict[str, Any]] = {}
    if root.is_dir():
        for folder in sorted(p for p in root.iterdir() if p.is_dir()):
            try:
                state = load_state(folder / "state.json")
            except StateError as e:
                fail(2, str(e))
            spool = sorted((folder / "spool").glob("*.spool"))
            row = rows.setdefault(folder.name, {"stream": folder.name})
            row["local"] = {
                "source": state.source if state else None,
                "cut_seq": (state.next_seq - 1) if state else -1,
                "cut_end": state.offset if state else 0,
                "unread_bytes": _unread(state),
                "spool_files": len(spool),
                "spool_bytes": sum(p.stat().st_size for p in spool),
            }
    error = None
    try:
        with settings.client() as client:
            for s in client.get_json("/v1/streams").get("streams", []):
                row = rows.setdefault(s["name"], {"stream": s["name"]})
                row["service"] = {
                    "head_seq": s["head"]["seq"],
                    "head_end": s["head"]["end"],
                    "head_at": s["head"]["at"],
                    "anchored_seq": s["anchored_seq"],
                }
    except (ApiError, ClientConfigError) as e:
        error = str(e)
    for row in rows.values():
        local, service = row.get("local"), row.get("service")
        if local and service:
            row["lag"] = {
                "segments": local["cut_seq"] - service["head_seq"],
                "bytes": local["cut_end"] - service["head_end"] + (local["unread_bytes"] or 0),
                "unanchored_segments": service["head_seq"] - service["anchored_seq"],
            }
    if as_json:
        print_json({"url": url, "service_error": error, "streams": list(rows.values())})
    else:
        header = (
            f"{'STREAM':24} {'HEAD':>8} {'ANCHORED':>8} {'LAG SEGS':>8} {'LAG BYTES':>12} "
            f"{'SPOOL':>12}"
        )
        click.echo(header)
        for name, row in sorted(rows.items()):
            svc, loc, lag = row.get("service", {}), row.get("local", {}), row.get("lag", {})
            click.echo(
                f"{name:24} {svc.get('head_seq', '-'):>8} {svc.get('anchored_seq', '-'):>8} "
                f"{lag.get('segments', '-'):>8} {lag.get('bytes', '-'):>12} "
                f"{loc.get('spool_bytes', '-'):>12}"
            )
    if error is not None:
        fail(3, f"service at {url}: {error} (local state shown)")


def _unread(state: Any) -> int | None:
    """Bytes in the source file after the read position (None if unknown)."""
    if state is None or state.cursor is None:
        return None
    try:
        st = Path(state.cursor.path).stat()
    except OSError:
        return None
    if (st.st_dev, st.st_ino) != (state.cursor.dev, state.cursor.ino):
        return None
    return max(st.st_size - int(state.cursor.pos), 0)


__all__ = ["logs"]
