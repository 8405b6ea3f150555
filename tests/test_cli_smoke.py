import subprocess
import sys


def test_version_runs_as_a_process() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"], capture_output=True, text=True, check=True
    )
    assert "notary" in out.stdout


def test_unknown_command_is_usage_error() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cli.main", "no-such-command"], capture_output=True, text=True
    )
    assert out.returncode == 2
    assert out.stderr.startswith("notary: ")
    assert len(out.stderr.strip().splitlines()) == 1
