"""A live node does not depend on its console or its stats log: a full disk under ``--stats-json``
or a closed stdout/stderr pipe drops what went there (said once where possible) and the stream and
its files go on. Real ``rdstream run`` processes with the tiny random checkpoint."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from stream.cli import main
from tests.conftest import ROOT, run_rdstream
from tests.support.small_fs import small_tmpfs

# 45 frames of a test pattern playing in real time at 15 fps: a run of at least 3 s, so several
# stats lines and status lines fall after the failure.
SOURCE = "test:?frames=45&size=96x64&rate=15"
SMALL = ["--res", "64", "-d", "1", "-d", "5", "--no-drop"]


def rdstream_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "stream.cli", *args]


def test_a_full_disk_under_stats_json_is_said_once_and_the_stream_goes_on(tmp_path, tiny_checkpoint):
    npy = tmp_path / "depth.npy"
    with small_tmpfs(tmp_path / "full", size_kb=64, fill=True) as full:
        result = run_rdstream("run", "--source", SOURCE, "--sink", f"npy:{npy}", "-c", str(tiny_checkpoint),
                              "--stats-json", str(full / "stats.jsonl"), *SMALL)
    assert result.returncode == 0, result.stderr
    assert np.load(npy).shape[0] == 45 and "45 frames in, 45 out" in result.stderr
    said = [line for line in result.stderr.splitlines() if "--stats-json" in line]
    assert len(said) == 2 and "No space left on device" in said[0] and "lines were not written" in said[1], said
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_stats_json_dash_is_stdout_and_a_closed_stdout_does_not_stop_the_run(tmp_path, tiny_checkpoint):
    npy = tmp_path / "depth.npy"
    proc = subprocess.Popen(rdstream_command("run", "--source", SOURCE, "--sink", f"npy:{npy}", "-c",
                                             str(tiny_checkpoint), "--stats-json", "-", *SMALL),
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # `| head -1`: one line, then the reader is gone
        proc.stdout.close()
        _, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.startswith('{"elapsed_s"'), first
    assert proc.returncode == 0, stderr
    assert np.load(npy).shape[0] == 45 and "45 frames in, 45 out" in stderr
    assert stderr.count("stdout was closed by its reader") == 1 and "Traceback" not in stderr, stderr
    assert not (ROOT / "-").exists() and not (tmp_path / "-").exists()


def test_a_closed_stderr_does_not_stop_the_run(tmp_path, tiny_checkpoint):
    npy = tmp_path / "depth.npy"
    proc = subprocess.Popen(rdstream_command("run", "--source", SOURCE, "--sink", f"npy:{npy}", "-c",
                                             str(tiny_checkpoint), "--status", *SMALL),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()  # `2>&1 | head -1`
        proc.stderr.close()
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert first.strip()
    assert proc.returncode == 0
    assert np.load(npy).shape[0] == 45  # every frame, though no status line after the first could be shown


def test_rdstream_debug_shows_the_traceback_behind_an_error_line(capsys, monkeypatch, tmp_path):
    args = ["run", "--source", "nope:x", "--sink", "null:", "-c", str(tmp_path)]
    with pytest.raises(SystemExit) as info:
        main(args)
    plain = capsys.readouterr().err
    monkeypatch.setenv("RDSTREAM_DEBUG", "1")
    with pytest.raises(SystemExit) as debug_info:
        main(args)
    debug = capsys.readouterr().err
    assert info.value.code == debug_info.value.code == 2
    assert "Traceback" not in plain and plain.count("\n") == 1
    assert debug.startswith("Traceback (most recent call last):") and "BadInputError" in debug
    assert debug.splitlines()[-1] == plain.strip()
