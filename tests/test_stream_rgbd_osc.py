"""``rdstream run`` as a TouchDesigner patch uses it: RGB-D layouts, per-frame stats, OSC control.

End to end in a subprocess with the tiny random checkpoint (its output is not depth; these
tests only check which frame went where and what the control messages did).
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from io_adapters.layouts import colour_as, split
from pipeline.preprocess import prepare_frames
from tests.conftest import write_clip

ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--res", "64", "-d", "1", "-d", "5", "--no-status"]


def rdstream(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def decoded(path: Path, fmt: str) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format=fmt) for frame in container.decode(video=0)]


def processed_inputs(clip: Path, res: int) -> np.ndarray:
    """The node's processed input frames: uint8 [N, H', W', 3] at the processing size."""
    images = prepare_frames(np.stack(decoded(clip, "rgb24")), res)
    return ((images.permute(0, 2, 3, 1) + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def test_no_drop_rgbd_run_writes_each_depth_beside_the_input_frame_it_came_from(tmp_path, tiny_checkpoint):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=24, width=96, height=64)
    mkv, mp4, stats = tmp_path / "rgbd.mkv", tmp_path / "rgbd.mp4", tmp_path / "stats.jsonl"
    result = rdstream("run", "--source", f"file:{clip}", "--sink", f"file:{mkv}?layout=rgbd",
                      "--sink", f"file:{mp4}?layout=rgbd-v&cmap=turbo", "-c", str(tiny_checkpoint), "--no-drop",
                      "--stats-json", str(stats), *SMALL)
    assert result.returncode == 0, result.stderr
    inputs = processed_inputs(clip, 64)  # [24, 40, 64, 3]
    assert inputs.shape == (24, 40, 64, 3)
    grey16 = decoded(mkv, "gray16le")
    assert len(grey16) == 24 and grey16[0].shape == (40, 128)
    for k, frame in enumerate(grey16):
        colour, _ = split(frame, "rgbd")
        # Lossless 16-bit file: the only difference is rounding inside the resize (<= 1 8-bit step).
        assert np.abs(colour.astype(int) - colour_as(inputs[k], "grey16")).max() <= 257, k
    videos = decoded(mp4, "rgb24")
    assert len(videos) == 24 and videos[0].shape == (80, 64, 3)
    for k, frame in enumerate(videos):
        colour, _ = split(frame, "rgbd-v")
        errors = [np.abs(colour.astype(int) - inputs[j].astype(int)).mean() for j in range(24)]
        assert errors[k] < 6.0, (k, errors[k])  # H.264 error
        assert int(np.argmin(errors)) == k  # the colour half is THE frame the depth came from
    lines = [json.loads(line) for line in stats.read_text().splitlines()]
    last = lines[-1]["frame"]
    assert last["index"] == 23 and last["timestamp"] == pytest.approx(23 / 30, abs=1e-3)
    assert last["latency_ms"] > 0 and last["near"] > last["far"]


@pytest.mark.parametrize("uri, message", [
    ("file:{tmp}/x.mp4?layout=side", "layout='side'"),
    ("npy:{tmp}/x.npy?layout=rgbd", "npy: sinks cannot carry layout=rgbd"),
])
def test_bad_layouts_fail_in_one_line_before_the_model_loads(tmp_path, uri, message):
    result = rdstream("run", "--source", "test:?frames=5", "--sink", uri.format(tmp=tmp_path),
                      "-c", str(tmp_path / "no-such-checkpoint"), *SMALL)
    assert result.returncode == 2 and message in result.stderr
    assert result.stderr.count("\n") == 1 and "checkpoint" not in result.stderr
