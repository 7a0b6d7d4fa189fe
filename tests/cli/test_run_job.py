"""``rdstream run``/``file`` outputs as a user meets them (subprocesses): failed sinks and exit codes,
bad outputs rejected before the model loads, true timestamps, no empty folder left behind."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from stream.node import NodeResult
from stream.cli.run_job import summary_line
from tests.conftest import ROOT, count_frames, run_rdstream, write_clip
from tests.support.small_fs import small_tmpfs

SMALL = ["--res", "64", "-d", "1", "-d", "5", "--no-status"]


rdstream = run_rdstream  # a real process, as a user runs it


def test_a_run_whose_only_sink_fails_on_a_full_disk_exits_1_and_leaves_no_broken_file(tmp_path, tiny_checkpoint):
    # The live encoder holds no frame back, so the full disk is met at the first frame (a failure
    # while closing is tested on the sink: test_file_sinks).
    with small_tmpfs(tmp_path / "disk", size_kb=64, fill=True) as disk:
        result = rdstream("run", "--source", "test:?frames=8&size=64x48", "--sink", f"file:{disk / 'x.mp4'}",
                          "--no-drop", "-c", str(tiny_checkpoint), *SMALL)
        assert result.returncode == 1, result.stderr
        assert "Traceback" not in result.stderr
        assert f"sink file:{disk / 'x.mp4'} failed and is skipped from now on: RuntimeFailure: " in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("rdstream: error:")]
        assert len(errors) == 1 and "every sink failed" in errors[0] and "No space left on device" in errors[0]
        assert sorted(p.name for p in disk.iterdir()) == ["filler"]  # no unplayable header-only file


def test_summary_lists_every_failed_sink():
    result = NodeResult(end_reason="source ended", frames_in=8, frames_out=8, frames_processed=8, dropped=0, lost=0,
                        elapsed_s=1.0, latency_p50_ms=1.0, latency_p95_ms=2.0, latency_max_ms=3.0, step_counts={},
                        sinks={"file:a.mp4": {"frames": 3, "dropped": 0, "error": "RuntimeFailure: disk full"},
                               "npy:a.npy": {"frames": 8, "dropped": 0, "error": None},
                               "ndi:D": {"frames": 8, "dropped": 0, "error": "RuntimeFailure: failed to close"}},
                        stages={})
    assert summary_line(result).endswith(
        "failed sinks: file:a.mp4 (RuntimeFailure: disk full), ndi:D (RuntimeFailure: failed to close)")
    assert not result.every_sink_failed
    assert NodeResult(**{**result.__dict__, "sinks": {"file:a.mp4": result.sinks["file:a.mp4"]}}).every_sink_failed


@pytest.mark.parametrize("case", ["same file twice", "huge test size", "stats-json read-only"])
def test_bad_outputs_and_sizes_are_one_line_exit_2_before_the_model_loads(tmp_path, case):
    # The checkpoint does not exist: reaching the model load would give a different message.
    sinks = ["file:x.mp4?cmap=turbo", "file:./x.mp4?cmap=Greys_r"] if case == "same file twice" else ["null:"]
    source = "test:?size=100000x100000" if case == "huge test size" else "test:?frames=3"
    args = ["run", "--source", source, *[a for uri in sinks for a in ("--sink", uri)], "-c", str(tmp_path / "none")]
    if case == "stats-json read-only":
        with small_tmpfs(tmp_path / "ro", read_only=True) as read_only:
            result = rdstream(*args, "--stats-json", str(read_only / "stats.jsonl"), timeout=60)
    else:
        result = rdstream(*args, timeout=60)
    expected = {"same file twice": "both write", "huge test size": "at most 8192",
                "stats-json read-only": "Read-only file system"}[case]
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("rdstream: error:"), result.stderr
    assert expected in result.stderr


def test_every_output_and_source_problem_is_found_by_the_option_check(tmp_path):
    from pipeline.errors import BadInputError
    from stream.cli.run_job import RunOptions, check_options

    (tmp_path / "d.npy").mkdir()
    cases = {
        "is a folder": dict(sinks=[f"npy:{tmp_path}"]),
        "d.npy is a folder": dict(sinks=[f"npy:{tmp_path / 'd.npy'}"]),
        "--stats-json: .* is a folder": dict(stats_json=str(tmp_path)),
        "same.mkv and npy:.*same.mkv both write": dict(sinks=[f"file:{tmp_path}/same.mkv", f"npy:{tmp_path}/same.mkv"]),
        "at most 8192": dict(source="test:?size=100000x100000"),
        "output folder .* does not exist": dict(sinks=[f"file:{tmp_path}/no/x.mp4"]),
    }
    for message, change in cases.items():
        options = {"source": "test:?frames=3", "sinks": ["null:"], "checkpoint": "x", **change}
        with pytest.raises(BadInputError, match=message):
            check_options(RunOptions(**options))


def test_no_drop_run_of_a_constant_rate_file_keeps_its_timing(tmp_path, tiny_checkpoint):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=20, width=96, height=64, fps=25)
    mp4, npy = tmp_path / "depth.mp4", tmp_path / "depth.npy"
    result = rdstream("run", "--source", f"file:{clip}", "--sink", f"file:{mp4}", "--sink", f"npy:{npy}",
                      "--no-drop", "--lookahead", "0", "-c", str(tiny_checkpoint), *SMALL)
    assert result.returncode == 0, result.stderr
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        times = np.array([frame.time for frame in container.decode(stream)])
    assert len(times) == 20 and np.allclose(np.diff(times), 1 / 25) and times[0] == 0  # constant rate
    assert np.allclose(np.load(tmp_path / "depth.timestamps.npy"), np.arange(20) / 25)


def test_a_failed_file_run_leaves_no_empty_output_folder(tmp_path, clip40):
    out = tmp_path / "new" / "out"
    result = rdstream("file", str(clip40), "-o", str(out), "-c", str(tmp_path / "missing-checkpoint"), timeout=60)
    assert result.returncode == 2, result.stderr
    assert not (tmp_path / "new").exists()


def test_rdstream_run_killed_with_sigkill_leaves_files_that_open(tmp_path, tiny_checkpoint):
    mp4, mkv, npy, stats = (tmp_path / name for name in ("d.mp4", "d.mkv", "d.npy", "stats.jsonl"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=96x64&rate=30", "--sink", f"file:{mp4}",
         "--sink", f"file:{mkv}", "--sink", f"npy:{npy}", "-c", str(tiny_checkpoint), "--stats-json", str(stats),
         *SMALL], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            lines = stats.read_text().splitlines() if stats.exists() else []
            if lines and json.loads(lines[-1])["frames_out"] >= 75:  # 2.5 s: two complete pieces of video
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.communicate()[1]
    finally:
        proc.kill()
        proc.communicate(timeout=30)
    depth, stamps = np.load(npy), np.load(tmp_path / "d.timestamps.npy")
    assert depth.shape[0] >= 70 and depth.shape[0] - 1 <= len(stamps) <= depth.shape[0]
    for video in (mp4, mkv):
        with av.open(str(video)) as container:
            assert sum(1 for _ in container.decode(video=0)) >= 30, video  # decodes to the end, no error


def test_a_run_with_no_output_frame_leaves_no_empty_file(tmp_path, tiny_checkpoint):
    # The rule of every file sink: no frame, no file (an empty .npy or timestamps file, or a video
    # without frames, would pass for a recording).
    clip = write_clip(tmp_path / "clip.mkv", num_frames=4, width=96, height=64)
    out = tmp_path / "out"
    out.mkdir()
    result = rdstream("run", "--source", f"file:{clip}?start=10", "--sink", f"npy:{out / 'd.npy'}",
                      "--sink", f"file:{out / 'd.mp4'}", "--sink", f"file:{out / 'd.mkv'}", "-c", str(tiny_checkpoint),
                      *SMALL)
    assert result.returncode == 0, result.stderr
    assert "0 frames in, 0 out" in result.stderr
    assert list(out.iterdir()) == []


def test_a_source_that_fails_mid_stream_drains_every_frame_read_to_the_files(tmp_path, tiny_checkpoint):
    clip = write_clip(tmp_path / "full.mkv", num_frames=30, width=96, height=64)
    data = clip.read_bytes()
    truncated = tmp_path / "truncated.mkv"
    truncated.write_bytes(data[: len(data) // 3])  # its header still declares 30 frames
    npy, mkv = tmp_path / "d.npy", tmp_path / "d.mkv"
    result = rdstream("run", "--source", f"file:{truncated}", "--sink", f"npy:{npy}", "--sink", f"file:{mkv}",
                      "-c", str(tiny_checkpoint), *SMALL)
    assert result.returncode == 2, result.stderr  # the input was bad, and the exit code says so
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("rdstream: error:") and "looks truncated" in error and "Traceback" not in result.stderr
    read = int(error.split("ends early at frame ")[1].split()[0])
    assert read >= 3 and re.search(f"source failed: .*; {read} frames in, {read} out", result.stderr)
    assert np.load(npy).shape[0] == read and count_frames(mkv) == read  # every frame read was written
