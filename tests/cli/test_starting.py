"""The first minutes of a run, as a person at a terminal sees them: a line at once (before torch
loads), options grouped in --help, and what the summary says first."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stream.cli import main
from stream.cli.help_format import PANEL_ORDER
from tests.conftest import ROOT

try:  # pseudo-terminals are POSIX only
    import pty
except ImportError:
    pty = None

# Generous: measured about 0.3-0.7 s on the loaded 2-core machine; torch alone takes 4-6 s there.
FIRST_LINE_S = 5.0


def first_terminal_line(args: list[str], cwd: Path) -> tuple[str, float]:
    """Start ``rdstream ARGS`` with stderr on a pseudo-terminal; its first line and how long it took."""
    leader, follower = pty.openpty()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "stream.cli", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=follower, env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(follower)
    seen = b""
    try:
        while b"\n" not in seen and time.perf_counter() - started < 60:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    seen += os.read(leader, 4096)
                except OSError:  # the process ended and closed the terminal
                    break
        elapsed = time.perf_counter() - started
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # stops cleanly even during start-up
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        os.close(leader)
    return seen.decode(errors="replace").splitlines()[0] if seen else "", elapsed


@pytest.mark.skipif(pty is None, reason="needs a pseudo-terminal (POSIX)")
@pytest.mark.parametrize("command", ["run", "rig-shorthand", "rig", "file"])
def test_a_line_comes_at_once_before_torch_loads(tiny_checkpoint, tmp_path, command):
    (tmp_path / "clip.mp4").write_bytes(b"")  # the file job's own checks come after the line
    (tmp_path / "rig.toml").write_text(f'[model]\ncheckpoint = "{tiny_checkpoint}"\nres = 64\n'
                                       '\n[[stream]]\nname = "a"\nsource = "test:?frames=5"\nsinks = ["null:"]\n')
    args = {"run": ["run", "--source", "test:?frames=5", "--sink", "null:", "-c", str(tiny_checkpoint), "--no-status"],
            "rig-shorthand": ["run", "--source", "test:?frames=5", "--source", "test:?frames=5", "--sink", "null:",
                              "-c", str(tiny_checkpoint), "--no-status"],
            "rig": ["rig", "rig.toml", "--no-status"],
            "file": ["file", "clip.mp4", "-c", str(tiny_checkpoint)]}[command]
    line, elapsed = first_terminal_line(args, tmp_path)
    expected = "rdstream rig" if command == "rig" else f"rdstream {args[0]}"
    assert line.startswith(f"{expected}: starting") and "loading torch and the model" in line, line
    assert elapsed < FIRST_LINE_S, f"first line after {elapsed:.2f} s"


def test_no_starting_line_when_stderr_is_not_a_terminal(capsys):
    # A bad input found before the line is one line, as everywhere.
    with pytest.raises(SystemExit) as exited:
        main(["run", "--source", "test:", "--sink", "null:", "--res", "5"])
    assert exited.value.code == 2 and len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.mark.parametrize("command", ["run", "file", "rig"])
def test_help_groups_the_options_under_headings(capsys, command):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    out = capsys.readouterr().out
    headings = [line[:-1] for line in out.splitlines() if line.endswith(":") and not line.startswith(" ")]
    expected = {"run": list(PANEL_ORDER), "file": ["Arguments", "Input and output", "Model", "Speed", "Monitoring"],
                "rig": ["Arguments", "Monitoring"]}[command]
    assert headings == [*expected, "Other options"], headings  # "Other options": --help alone
    assert out.split("Other options:")[1].split() == ["--help", "Show", "this", "message", "and", "exit."]
