"""``notary logs push/verify/status`` as a broker runs them: subprocesses against one
live ``notary serve`` for the module. Failures are real: kill -9 of the pusher, files
rotated by rename and by truncation under ``--follow``, a byte flipped in the log."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.cli.live_server import notary_argv, run_notary
from tests.cli.logs_cli import all_anchored, module_server, push, pusher_env, report, verify
from tests.cli.logs_helpers import append, head, head_end, lines, one_line, wait_for

server = module_server("logs-server")
env = pusher_env()


def test_push_verify_and_push_again(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(lines(0, 3000))
    r = push(env, str(log), "--stream", "day", "--segment-bytes", "16KiB", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)["streams"][0]
    assert out["bytes"] == log.stat().st_size and out["anchored_seq"] == out["head_seq"]
    v = verify(env, "day", "--against", str(log))
    assert v.returncode == 0, v.stdout
    rep = report(v)
    assert rep["valid"] and rep["end"] == log.stat().st_size and rep["first_seq"] == 0

    # Nothing new: nothing sent. New lines: only they are sent, and the chain goes on.
    r = push(env, str(log), "--stream", "day", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["streams"][0]["segments"] == 0
    append(log, lines(3000, 500))
    r = push(env, str(log), "--stream", "day", "--segment-bytes", "16KiB", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["streams"][0]["bytes"] == len(lines(3000, 500))
    v = verify(env, "day", "--against", str(log))
    assert v.returncode == 0, v.stdout

    status = run_notary("logs", "status", "--json", env=env)
    assert status.returncode == 0, status.stderr
    row = next(s for s in json.loads(status.stdout)["streams"] if s["stream"] == "day")
    assert row["lag"] == {"segments": 0, "bytes": 0, "unanchored_segments": 0}
    assert row["local"]["spool_bytes"] == 0


def test_a_changed_byte_is_found_by_verify_against(env: dict[str, str], tmp_path: Path) -> None:
    log = tmp_path / "trades.log"
    log.write_bytes(lines(0, 2000))
    assert push(env, str(log), "--stream", "trades", "--segment-bytes", "8KiB").returncode == 0
    data = bytearray(log.read_bytes())
    where = 123_457
    line_no = data[:where].count(b"\n") + 1
    data[where] ^= 0x20
    log.write_bytes(bytes(data))
    v = verify(env, "trades", "--against", str(log))
    assert v.returncode == 1, v.stdout
    brk = report(v)["first_break"]
    assert isinstance(brk, dict)
    assert brk["check"] == "content" and brk["offset"] == where
    assert f"line {line_no}" in brk["detail"]
    # The human report names the same place.
    human = run_notary("logs", "verify", "--stream", "trades", "--against", str(log), env=env)
    assert human.returncode == 1 and f"byte {where}" in human.stdout
    # A truncated copy is reported where it ends.
    log.write_bytes(bytes(data[:50_000]))
    brk = report(verify(env, "trades", "--against", str(log)))["first_break"]
    assert isinstance(brk, dict) and brk["check"] == "content" and brk["offset"] == 50_000


def test_kill_9_mid_push_resumes_without_gap_or_duplicate(
    env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "big.log"
    log.write_bytes(lines(0, 64_000))  # about 6.4 MB: some 400 segments
    state = Path(env["NOTARY_LOGS_STATE_DIR"])
    argv = notary_argv("logs", "push", str(log), "--stream", "killed", "--segment-bytes", "16KiB")
    for threshold in (8, 40):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # Kill while segments are in flight: after the service has some, before all.
            def accepted(t: int = threshold) -> bool:
                h = head(env["NOTARY_URL"], "killed")
                return h is not None and h["head"]["seq"] >= t

            wait_for(
                accepted,
                120,
                f"{threshold} segments accepted",
            )
            assert proc.poll() is None, "the push ended before it could be killed"
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        assert list(state.rglob("spool/*.spool")), "the kill left nothing in flight"
    r = push(env, str(log), "--stream", "killed", "--segment-bytes", "16KiB")
    assert r.returncode == 0, r.stderr
    v = verify(env, "killed", "--against", str(log))
    assert v.returncode == 0, v.stdout
    rep = report(v)
    assert rep["end"] == log.stat().st_size  # every byte once: no gap, no duplicate
    assert not list(state.rglob("spool/*.spool"))


def test_follow_across_rotation_by_rename_and_by_truncation(
    env: dict[str, str], tmp_path: Path
) -> None:
    url = env["NOTARY_URL"]
    log = tmp_path / "live.log"
    log.write_bytes(b"")
    proc = subprocess.Popen(
        notary_argv(
            "logs",
            "push",
            str(log),
            "--stream",
            "live",
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
    written: list[bytes] = []
    try:

        def write(data: bytes) -> None:
            append(log, data)
            written.append(data)

        def caught_up() -> bool:
            return head_end(url, "live") == sum(len(w) for w in written)

        write(lines(0, 300, "g1 "))
        wait_for(caught_up, 60, "the first generation anchored")
        write(lines(300, 50, "g1 "))
        # Rotation by rename: the writer renames, then reopens the path.
        log.rename(tmp_path / "live.log.1")
        write(lines(350, 200, "g2 "))
        wait_for(caught_up, 60, "the lines after the rename")
        # Rotation by truncation (copytruncate), right after more lines were written:
        # the pusher may not have read them yet; they are in the copy.
        write(lines(550, 120, "g2 "))
        shutil.copyfile(log, tmp_path / "live.log.2")
        with log.open("r+b") as f:
            f.truncate(0)
        write(lines(670, 200, "g3 "))
        wait_for(caught_up, 60, "the lines after the truncation")
        write(b"a partial line without its end")
    finally:
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # --follow does not wait for anchoring: verify once every accepted segment is anchored.
    wait_for(lambda: all_anchored(url, "live"), 60, "the segments anchored")
    whole = tmp_path / "whole.log"
    whole.write_bytes(b"".join(written[:-1]))  # the partial line is not pushed yet
    v = verify(env, "live", "--against", str(whole))
    assert v.returncode == 0, v.stdout
    # The stream is every line once, in order: nothing lost, nothing repeated.
    assert report(v)["end"] == whole.stat().st_size


def test_a_folder_is_one_stream_per_file(env: dict[str, str], tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "fix.log").write_bytes(lines(0, 100))
    (folder / "oms.log").write_bytes(lines(100, 150))
    (folder / "oms.log.1").write_bytes(b"rotated: not pushed\n")
    r = push(env, str(folder), "--stream", "desk", "--json")
    assert r.returncode == 0, r.stderr
    names = sorted(s["stream"] for s in json.loads(r.stdout)["streams"])
    assert names == ["desk.fix.log", "desk.oms.log"]
    for name, file in (("desk.fix.log", "fix.log"), ("desk.oms.log", "oms.log")):
        v = verify(env, name, "--against", str(folder / file))
        assert v.returncode == 0, v.stdout


def test_a_stream_pushed_from_elsewhere_is_not_overwritten(
    env: dict[str, str], tmp_path: Path
) -> None:
    log = tmp_path / "x.log"
    log.write_bytes(lines(0, 10))
    assert push(env, str(log), "--stream", "owned").returncode == 0
    other = dict(env, NOTARY_LOGS_STATE_DIR=str(tmp_path / "other-state"))
    r = push(other, str(log), "--stream", "owned")
    assert r.returncode == 2
    assert "already has segments 0..0" in one_line(r.stderr)


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["logs", "push", "missing.log", "--stream", "s"], "cannot read missing.log"),
        (["logs", "push", "x.log", "--stream", "bad name"], "invalid stream name"),
        (["logs", "push", "x.log", "--stream", "s", "--segment-bytes", "lots"], "not a size"),
        (["logs", "push", "x.log", "--stream", "s", "--spool-bytes", "10"], "--spool-bytes"),
        (["logs", "push", "x.log", "--stream", "s", "--bogus"], "No such option"),
        (["logs", "push", "--stream", "s"], "Missing argument"),
        (["logs", "verify", "--stream", "s", "--trust", "nope.json"], "cannot read trust file"),
        (["logs", "verify", "--stream", "s", "--trust", "x.log"], "unusable trust file"),
        (["logs", "verify", "--stream", "s", "--from", "monday"], "--from takes"),
        (["logs", "verify", "--stream", "day", "--against", "missing.log"], "cannot read"),
    ],
)
def test_bad_input_is_exit_2_and_one_line(
    env: dict[str, str], tmp_path: Path, args: list[str], needle: str
) -> None:
    (tmp_path / "x.log").write_bytes(b"a line\n")
    r = run_notary(*args, env=env, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert needle in one_line(r.stderr)


def test_unknown_stream_and_unreachable_service(env: dict[str, str], tmp_path: Path) -> None:
    r = run_notary("logs", "verify", "--stream", "never-pushed", env=env)
    assert r.returncode == 3 and "stream_not_found" in one_line(r.stderr)
    down = dict(env, NOTARY_URL="http://127.0.0.1:9")
    r = run_notary("logs", "status", env=down)
    assert r.returncode == 3 and "unreachable" in r.stderr
