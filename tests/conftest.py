"""Shared test fixtures: a tiny random checkpoint (real layout, meaningless depth) and clip makers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest


_STOP_SIGNALS = [s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None]


@pytest.fixture(autouse=True)
def stop_signal_handlers_restored():
    """A command run in this process and stopped by a signal ignores further stops (its process is
    ending, stream.control.stop_signals.ignore_further_stops). Here the process goes on, and a
    child started later would inherit an ignored SIGINT and never stop on Ctrl-C."""
    before = {s: signal.getsignal(s) for s in _STOP_SIGNALS}
    yield
    for signum, handler in before.items():
        if signal.getsignal(signum) is not handler and handler is not None:
            signal.signal(signum, handler)


def pytest_configure(config):
    # The tests play a user at a terminal, who stops runs with Ctrl-C. A test run started in the
    # background (`make test &`, nohup, a CI step) inherits an ignored SIGINT, which every child
    # process would inherit too, and no Ctrl-C a test sends would arrive: give SIGINT its default.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # Keep derived caches (text embeddings) out of the user's home during tests.
    cache = Path(config.rootpath) / ".pytest-rdstream-cache"
    os.environ.setdefault("RDSTREAM_CACHE_DIR", str(cache))
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    # The tests run tiny models, where a second thread costs more in synchronisation than it
    # gains (measured: up to 30x slower on a loaded 2-core machine). Subprocesses inherit this.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from pipeline.tiny_checkpoint import write_tiny_checkpoint

    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "ckpt")


@pytest.fixture(scope="session")
def tiny_model(tiny_checkpoint):
    from pipeline.checkpoint import load_rolling_depth

    return load_rolling_depth(str(tiny_checkpoint), "cpu")


@pytest.fixture(scope="session")
def tiny_decoder(tmp_path_factory) -> Path:
    """A tiny random AutoencoderTiny (TAESD layout): the ``--decoder`` / ``--encoder`` of the tests."""
    from pipeline.tiny_decoder import write_tiny_decoder

    return write_tiny_decoder(tmp_path_factory.mktemp("decoder") / "taesd-random")


def moving_pattern(num_frames: int, height: int, width: int) -> np.ndarray:
    """uint8 [N, H, W, 3]: a gradient with a moving square, so frames differ."""
    y, x = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    for i in range(num_frames):
        frames[i, ..., 0] = (x * 255 // max(1, width - 1) + 3 * i) % 256
        frames[i, ..., 1] = y * 255 // max(1, height - 1)
        frames[i, ..., 2] = 60
        top, left = (i * 2) % max(1, height - 8), (i * 3) % max(1, width - 8)
        frames[i, top : top + 8, left : left + 8] = 255
    return frames


def write_clip(path: Path, num_frames: int = 40, width: int = 96, height: int = 64, fps: int = 30) -> Path:
    """Write a test clip: H.264 for .mp4 (even sizes), lossless FFV1 for .mkv (any size)."""
    import av  # imported here: the GPU check machine has no PyAV and runs only tests that need none

    frames = moving_pattern(num_frames, height, width)
    with av.open(str(path), "w") as container:
        if path.suffix == ".mkv":
            stream = container.add_stream("ffv1", rate=fps)
            stream.pix_fmt = "yuv444p"
        else:
            stream = container.add_stream("libx264", rate=fps)
            stream.pix_fmt = "yuv420p"
        stream.width, stream.height = width, height
        for rgb in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def clip40(tmp_path_factory) -> Path:
    return write_clip(tmp_path_factory.mktemp("clips") / "clip.mp4", 40)


def count_frames(path: Path) -> int:
    import av

    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


ROOT = Path(__file__).resolve().parents[1]


def rdstream_in_process(*args) -> int:
    """``rdstream ARGS`` in this process (fast, no start-up of its own); returns the exit code."""
    from stream.cli import main

    with pytest.raises(SystemExit) as info:
        main([str(a) for a in args])
    return info.value.code


def run_rdstream(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """``rdstream ARGS`` as a user runs it: a real process, output captured."""
    return subprocess.run([sys.executable, "-m", "stream.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def wait_for_output(proc: subprocess.Popen, stats: Path, frames: int, timeout: float = 90) -> None:
    """Wait until a running ``rdstream run`` has written ``frames`` output frames (read from its
    ``--stats-json`` file ``stats``); fails with its stderr when it ended first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        lines = stats.read_text().splitlines() if stats.exists() else []
        if lines and json.loads(lines[-1])["frames_out"] >= frames:
            return
        time.sleep(0.1)
    assert proc.poll() is None, proc.communicate()[1]
    raise AssertionError(f"no {frames} output frames within {timeout} s")


def stop_after_output(proc: subprocess.Popen, stats: Path, frames: int, *signals: int, gap_s: float = 0.0,
                      timeout: float = 60) -> str:
    """Wait for ``frames`` output frames (``wait_for_output``), send ``signals`` ``gap_s`` apart and
    wait for the run to end; returns its stderr. A run still alive on the way out is killed."""
    try:
        wait_for_output(proc, stats, frames)
        for index, signum in enumerate(signals):
            if index:
                time.sleep(gap_s)
            proc.send_signal(signum)
        return proc.communicate(timeout=timeout)[1]
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.fixture()
def dynamo_eager(monkeypatch):
    """``--compile`` through dynamo's "eager" backend: inductor's code generation takes minutes on a
    2-core machine (the tiny decoder alone: 2 min); the eager backend captures the same graphs, with
    guards and recompiles, and runs them without generating code. (aot_eager fails on the VAE's group
    norm in torch 2.13 on the CPU, a torch issue; inductor itself compiles it.)"""
    import torch

    monkeypatch.setenv("RDSTREAM_COMPILE_BACKEND", "eager")
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()
