"""``notary logs push`` as a broker runs it, part two: files that appear while following
a folder or a glob become streams of their own, and the progress display (on a terminal
only). Subprocesses against one live ``notary serve`` for the module."""

from __future__ import annotations

import json
import os
import pty
import signal
import subprocess
from pathlib import Path

from tests.cli.live_server import notary_argv
from tests.cli.logs_cli import module_server, pusher_env, verified
from tests.cli.logs_helpers import append, head, head_end, lines, wait_for

server = module_server("logs-discovery-server")
env = pusher_env()


def test_follow_picks_up_new_files_of_a_folder_and_a_glob(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = env["NOTARY_URL"]
    folder, other = tmp_path / "d", tmp_path / "g"
    folder.mkdir()
    other.mkdir()
    (folder / "first.log").write_bytes(lines(0, 50))
    (other / "first.txt").write_bytes(lines(50, 20))
    proc = subprocess.Popen(
        notary_argv(
            "logs",
            "push",
            str(folder),
            str(other / "*.txt"),
            "--stream",
            "ff",
            "--follow",
            "--segment-bytes",
            "4KiB",
            "--segment-seconds",
            "0.2",
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        first = (folder / "first.log").stat().st_size
        wait_for(lambda: head_end(url, "ff.first.log") == first, 60, "the first file")
        # Files created after the start: two new logs and a rotated name (not a new log).
        (folder / "new.log").write_bytes(lines(100, 80, "new "))
        (folder / "new.log.1").write_bytes(b"a rotated copy: not a stream of its own\n")
        (other / "late.txt").write_bytes(lines(200, 30, "late "))
        (other / "late.log").write_bytes(b"does not match the glob\n")
        wait_for(
            lambda: head_end(url, "ff.new.log") == (folder / "new.log").stat().st_size,
            60,
            "the new file of the folder",
        )
        wait_for(
            lambda: head_end(url, "ff.late.txt") == (other / "late.txt").stat().st_size,
            60,
            "the new file of the glob",
        )
        append(folder / "new.log", lines(300, 40, "more "))  # followed like the others
        wait_for(
            lambda: head_end(url, "ff.new.log") == (folder / "new.log").stat().st_size,
            60,
            "lines appended to the new file",
        )
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err == b""
    for stream, file in (
        ("ff.first.log", folder / "first.log"),
        ("ff.first.txt", other / "first.txt"),
        ("ff.new.log", folder / "new.log"),
        ("ff.late.txt", other / "late.txt"),
    ):
        assert verified(env, stream, file) == file.stat().st_size
    assert head(url, "ff.new.log.1") is None
    assert head(url, "ff.late.log") is None


def _on_a_terminal(argv: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    main, side = pty.openpty()
    proc = subprocess.Popen(
        argv, env={**env, "TERM": "xterm", "COLUMNS": "160"}, stdout=subprocess.PIPE, stderr=side
    )
    os.close(side)
    seen = bytearray()
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: every writer of the terminal is gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    out, _ = proc.communicate(timeout=120)
    return proc.returncode, out.decode(), seen.decode(errors="replace")


def test_progress_bars_on_a_terminal_only(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(lines(0, 400))
    (tmp_path / "b.log").write_bytes(lines(400, 200))
    base = ["logs", "push", str(tmp_path / "*.log"), "--segment-bytes", "8KiB"]
    code, out, terminal = _on_a_terminal(notary_argv(*base, "--stream", "pb"), env)
    assert code == 0, terminal
    # A bar per file and one overall, ending at the files' sizes (rich's DownloadColumn).
    assert "pb.a.log" in terminal and "pb.b.log" in terminal and "all" in terminal
    assert "31.8/31.8 kB" in terminal and "47.7/47.7 kB" in terminal, terminal
    # The report on stdout is the same as without a terminal.
    assert sorted(out.splitlines())[0].startswith("pb.a.log: ")
    # --json: no display, even on a terminal.
    code, out, terminal = _on_a_terminal(notary_argv(*base, "--stream", "pj", "--json"), env)
    assert code == 0, terminal
    assert terminal.strip() == ""
    assert sorted(s["stream"] for s in json.loads(out)["streams"]) == ["pj.a.log", "pj.b.log"]
