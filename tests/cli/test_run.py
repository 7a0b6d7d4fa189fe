"""``rdstream run`` end to end as a user runs it: a subprocess with the tiny random checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest

from tests.conftest import ROOT, count_frames, run_rdstream, stop_after_output, write_clip

SMALL = ["--res", "64", "-d", "1", "-d", "5", "--no-status"]


rdstream = run_rdstream  # a real process, as a user runs it


def test_no_drop_file_run_writes_exactly_as_many_frames_as_the_input(tmp_path, tiny_checkpoint):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=30, width=96, height=64)
    mkv, npy = tmp_path / "depth.mkv", tmp_path / "depth.npy"
    result = rdstream("run", "--source", f"file:{clip}", "--sink", f"file:{mkv}", "--sink", f"npy:{npy}",
                      "-c", str(tiny_checkpoint), "--no-drop", "--lookahead", "2", *SMALL)
    assert result.returncode == 0, result.stderr
    assert "tiny RANDOM test model" in result.stderr and "30 frames in, 30 out" in result.stderr
    assert "input: 96x64 in, processed at 64x40" in result.stderr and "upscaled" not in result.stderr
    depth = np.load(npy)
    assert count_frames(mkv) == 30 and depth.shape == (30, 40, 64)
    assert depth.dtype == np.float32 and 0.0 <= depth.min() and depth.max() <= 1.0


@pytest.mark.skipif(sys.platform == "win32", reason="sends POSIX signals to a child process, which Windows cannot")
def test_ctrl_c_in_the_middle_drains_and_leaves_valid_files(tmp_path, tiny_checkpoint):
    mp4, npy, stats = tmp_path / "depth.mp4", tmp_path / "depth.npy", tmp_path / "stats.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=96x64&rate=30", "--sink", f"file:{mp4}",
         "--sink", f"npy:{npy}", "-c", str(tiny_checkpoint), "--stats-json", str(stats), *SMALL],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = stop_after_output(proc, stats, 5, signal.SIGINT)
    assert proc.returncode == 0, stderr
    assert "interrupted:" in stderr and "Traceback" not in stderr
    frames = np.load(npy).shape[0]
    assert frames >= 5 and count_frames(mp4) == frames  # the never-ending source stopped, both files complete
    last = json.loads(stats.read_text().splitlines()[-1])
    assert last["frames_out"] == frames


def test_bad_sink_is_one_line_and_exit_2_before_loading_a_model(tmp_path):
    result = rdstream("run", "--source", "test:?frames=3", "--sink", "syphonx:Depth", "-c", str(tmp_path / "none"),
                      timeout=60)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "unknown sink scheme 'syphonx' in 'syphonx:Depth'" in result.stderr


def test_bad_normalize_and_lookahead_are_exit_2(tmp_path):
    for option in (["--normalize", "minmax"], ["--lookahead", "-1"]):
        result = rdstream("run", "--source", "test:?frames=3", "--sink", "null:", "-c", str(tmp_path), *option,
                          timeout=60)
        assert result.returncode == 2 and result.stderr.startswith("rdstream: error:"), result.stderr


def test_a_lookahead_that_only_adds_latency_is_warned_about_before_the_model_loads(tmp_path):
    base = ["run", "--source", "test:?frames=3", "--sink", "null:", "-c", str(tmp_path / "none"), "-d", "1", "-d", "25"]
    result = rdstream(*base, "--lookahead", "10", timeout=60)
    lines = result.stderr.splitlines()
    assert lines[0] == ("rdstream: warning: --lookahead 10: each frame gets the same 4 snippets as with --lookahead 2; "
                        "the 8 extra frames only add latency (useful values: 0, 1, 2, 25, 50)"), result.stderr
    assert lines[1].startswith("rdstream: error:")  # the missing checkpoint, found after the warning
    assert "warning" not in rdstream(*base, "--lookahead", "25", timeout=60).stderr


def test_policy_defaults_live_sources_drop_files_do_not_and_realtime_paces_files(monkeypatch, tmp_path):
    from stream.cli.run_job import RunOptions, check_options

    clip = write_clip(tmp_path / "clip.mp4", num_frames=3, width=32, height=32)  # file: sources are probed

    # The policy is the same whether or not ndi-python is installed here (the check asks for it).
    monkeypatch.setattr("io_adapters.ndi.library.check_ndi_installed", lambda: None)

    def checked(source, realtime=None):
        return check_options(RunOptions(source=source, sinks=["null:"], checkpoint="x", realtime=realtime))

    assert checked("ndi:Cam").drop_frames and checked("camera:0").drop_frames
    assert not checked(f"file:{clip}").drop_frames and not checked("test:?frames=3").drop_frames
    assert checked(f"file:{clip}").pace_source is None  # a file is read as fast as the model goes
    realtime_file = checked(f"file:{clip}", realtime=True)
    assert realtime_file.drop_frames and realtime_file.pace_source is True
    assert not checked("ndi:Cam", realtime=False).drop_frames
    assert checked("test:?frames=3").plan.dilations == (1, 25)


def test_summary_says_a_frame_that_arrived_during_the_stop_was_not_processed():
    from stream.cli.run_job import summary_line
    from stream.node import NodeResult

    result = NodeResult(end_reason="interrupted", frames_in=25, frames_out=24, frames_processed=24, dropped=0, lost=0,
                        elapsed_s=1.0, latency_p50_ms=1.0, latency_p95_ms=2.0, latency_max_ms=3.0, step_counts={},
                        sinks={}, stages={})
    assert "25 frames in, 24 out" in summary_line(result)
    assert "1 received after the stop, not processed" in summary_line(result)


def test_run_with_compile_on_the_cpu_where_it_cannot_compile(tiny_checkpoint, tmp_path):
    # --compile with --device cpu is allowed; a compile failure is one line each, then eager, exit 0
    env = dict(os.environ, RDSTREAM_COMPILE_BACKEND="no_such_backend")
    result = subprocess.run([sys.executable, "-m", "stream.cli", "run", "--source", "test:?frames=5&size=80x48",
                             "--sink", f"npy:{tmp_path / 'd.npy'}", "-c", str(tiny_checkpoint), "--device", "cpu",
                             "--compile", "-d", "1", "--lookahead", "0", "--no-status"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    failures = [line for line in result.stderr.splitlines() if line.startswith("--compile: cannot compile")]
    assert len(failures) == 2 and all("running it eager" in line for line in failures)
    assert "--compile: ready" in result.stderr
    assert np.load(tmp_path / "d.npy").shape[0] == 5
