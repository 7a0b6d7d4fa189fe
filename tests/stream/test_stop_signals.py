"""How ``rdstream run`` processes end and meet: real processes, real signals, the files they leave.

Ctrl-C, SIGTERM and SIGHUP stop the same way (drain, close the files, summary, exit 0); a second
one skips the drain; none ever turns the end into a death by signal or a broken file. A second
process on a file a live run is writing is refused; a killed run's lock blocks nothing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest

from tests.conftest import ROOT, stop_after_output, wait_for_output

# POSIX signals sent to a child process (SIGINT, SIGTERM, SIGHUP); Windows stops with Ctrl-C/Ctrl-Break
# events, covered by tests/test_windows_portability.py.
pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to a child process")



def start_run(tmp_path: Path, checkpoint: Path, *extra: str) -> tuple[subprocess.Popen, dict[str, Path]]:
    """A never-ending live run writing mp4, mkv and npy, with its stats log (to see it is running)."""
    files = {name: tmp_path / name for name in ("d.mp4", "d.mkv", "d.npy", "stats.jsonl")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=96x64&rate=30",
         "--sink", f"file:{files['d.mp4']}", "--sink", f"file:{files['d.mkv']}", "--sink", f"npy:{files['d.npy']}",
         "-c", str(checkpoint), "--stats-json", str(files["stats.jsonl"]), "--res", "64", "-d", "1", "-d", "5",
         "--no-status", *extra],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, files


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


def assert_files_agree(files: dict[str, Path]) -> int:
    """Every file opens and holds the same frames; returns how many."""
    frames = np.load(files["d.npy"]).shape[0]
    assert len(np.load(files["d.npy"].with_name("d.timestamps.npy"))) == frames
    assert decoded_frames(files["d.mp4"]) == frames and decoded_frames(files["d.mkv"]) == frames
    return frames


@pytest.mark.parametrize("gap_s", [0.05, 0.2, 0.2, 0.2])
def test_ctrl_c_twice_skips_the_drain_exits_0_and_leaves_valid_files(tmp_path, tiny_checkpoint, gap_s):
    # The second Ctrl-C lands during the drain, during the close of the files or after it: each of
    # these moments must end the same way (before, a late one killed the process: exit 130).
    proc, files = start_run(tmp_path, tiny_checkpoint)
    stderr = stop_after_output(proc, files["stats.jsonl"], 5, signal.SIGINT, signal.SIGINT, gap_s=gap_s)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr and "frames in" in stderr
    assert assert_files_agree(files) >= 5


@pytest.mark.skipif(sys.platform == "win32", reason="SIGHUP exists on POSIX only")
def test_sighup_stops_like_sigterm_with_a_summary_and_complete_files(tmp_path, tiny_checkpoint):
    proc, files = start_run(tmp_path, tiny_checkpoint)
    stderr = stop_after_output(proc, files["stats.jsonl"], 5, signal.SIGHUP)
    assert proc.returncode == 0, stderr
    assert "stopping: draining the pipeline" in stderr and "interrupted:" in stderr and "Traceback" not in stderr
    # who stopped it: on the terminal as it happens, in the summary and in the last stats line
    assert "(asked by signal SIGHUP;" in stderr and "interrupted: stopped by signal SIGHUP;" in stderr
    frames = assert_files_agree(files)
    assert frames >= 5
    last = json.loads(files["stats.jsonl"].read_text().splitlines()[-1])
    assert last["frames_out"] == frames and last["stopped_by"] == "signal SIGHUP"


def test_a_second_process_on_a_live_output_is_refused_before_its_model_loads(tmp_path, tiny_checkpoint):
    first, files = start_run(tmp_path, tiny_checkpoint)
    try:
        wait_for_output(first, files["stats.jsonl"], 3)
        # The same npy file spelt differently; the missing checkpoint shows the refusal comes first.
        (tmp_path / "sub").mkdir()
        second = subprocess.run(
            [sys.executable, "-m", "stream.cli", "run", "--source", "test:?frames=3", "--sink",
             f"npy:{tmp_path / 'sub' / '..' / 'd.npy'}", "-c", str(tmp_path / "no-checkpoint")],
            cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2, second.stderr
        assert second.stderr.count("\n") == 1
        assert f"is being written by another running rdstream (process {first.pid})" in second.stderr
        first.send_signal(signal.SIGINT)
        _, stderr = first.communicate(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert assert_files_agree(files) >= 3  # the first run's files are whole
    assert not list(tmp_path.glob(".*rdstream-lock"))  # a finished run leaves no lock file


def test_the_lock_of_a_killed_run_does_not_block_the_next(tmp_path, tiny_checkpoint):
    killed, files = start_run(tmp_path, tiny_checkpoint)
    try:
        wait_for_output(killed, files["stats.jsonl"], 1)
    finally:
        killed.kill()
        killed.communicate(timeout=30)
    assert list(tmp_path.glob(".*rdstream-lock"))  # kill -9 left its lock files behind
    result = subprocess.run(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?frames=3&size=96x64", "--sink",
         f"npy:{files['d.npy']}", "--sink", f"file:{files['d.mp4']}", "-c", str(tiny_checkpoint),
         "--res", "64", "--no-status"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert np.load(files["d.npy"]).shape[0] == 3


def signal_after_line(argv: list[str], seen, sig: int, settle_s: float, wait_s: float) -> tuple[list[str], str, float, int]:
    """Run ``argv``, read its stderr until a line for which ``seen(line)`` holds, wait ``settle_s``,
    send ``sig``; returns (the lines read until then, the rest of stderr, seconds from the signal to
    the exit, exit code). The process is killed if it outlives ``wait_s`` or the test fails."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said = []
        for line in proc.stderr:
            said.append(line)
            if seen(line):
                break
        time.sleep(settle_s)
        sent = time.monotonic()
        proc.send_signal(sig)
        rest = proc.stderr.read()
        proc.wait(timeout=wait_s)
        return said, rest, time.monotonic() - sent, proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_during_the_compile_stops_at_once_with_valid_files(tmp_path, tiny_checkpoint):
    # inductor's compile of even the tiny model takes many minutes on a 2-core CPU: the stop must not
    # wait for it (before, SIGTERM did nothing for 20 s and more); the cost is said before it starts
    files = {name: tmp_path / name for name in ("d.mp4", "d.npy", "stats.jsonl")}
    said, rest, took, code = signal_after_line(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=64x36&frames=20",
         "--sink", f"file:{files['d.mp4']}", "--sink", f"npy:{files['d.npy']}", "-c", str(tiny_checkpoint),
         "--stats-json", str(files["stats.jsonl"]), "--res", "64", "--compile", "--device", "cpu", "--no-status"],
        lambda line: line.startswith("--compile: compiling"), signal.SIGTERM, settle_s=0.5, wait_s=30)
    assert said and "--compile: compiling" in said[-1], "".join(said)
    assert "on the CPU this takes many minutes and gains little" in said[-1] and "Ctrl-C stops it" in said[-1]
    assert code == 0 and took < 5, (took, rest)
    assert "Traceback" not in rest and "stopped during the compile" in rest
    # nothing reached the sinks, so no half-made file; the stats log is whole
    assert not files["d.mp4"].exists() and not files["d.npy"].exists()
    assert all(json.loads(line)["frames_out"] == 0 for line in files["stats.jsonl"].read_text().splitlines())


def test_ctrl_c_during_the_compile_of_rdstream_file_stops_at_once(tmp_path, tiny_checkpoint):
    # the offline job compiles on its first snippets; after Ctrl-C, Python's exit would wait for
    # torch's compile workers (seconds to minutes): the stopped job ends without them
    from tests.conftest import write_clip

    clip = write_clip(tmp_path / "clip.mp4", num_frames=8, width=96, height=64)
    said, rest, took, code = signal_after_line(
        [sys.executable, "-m", "stream.cli", "file", str(clip), "-o", str(tmp_path / "out"), "-c", str(tiny_checkpoint),
         "--compile", "--res", "64", "-d", "1", "--device", "cpu"],
        lambda line: line.startswith("clip encode: 8/8"),  # the encoder is not compiled: the compile starts with the snippets
        signal.SIGINT, settle_s=2, wait_s=60)  # 2 s: into the compile
    assert any("on the CPU this takes many minutes" in line and "Ctrl-C stops it" in line for line in said), said
    assert code == 130 and "rdstream: stopped" in rest and "Traceback" not in rest, rest
    assert took < 3, took
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())  # no half-written output
