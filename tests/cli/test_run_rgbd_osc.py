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
from tests.conftest import ROOT, run_rdstream, write_clip

SMALL = ["--res", "64", "-d", "1", "-d", "5", "--no-status"]


rdstream = run_rdstream  # a real process, as a user runs it


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


def run_in_process(capsys, *args: str) -> tuple[int, str]:
    """``rdstream ARGS`` in this process (for errors found before the model loads): (exit code, stderr)."""
    from stream.cli import main

    with pytest.raises(SystemExit) as leaving:
        main(list(args))
    return leaving.value.code, capsys.readouterr().err


@pytest.mark.parametrize("uri, message", [
    ("file:{tmp}/x.mp4?layout=side", "layout='side'"),
    ("ndi:Depth?layout=rgbd-h", "layout='rgbd-h'"),
    ("npy:{tmp}/x.npy?layout=rgbd", "npy: sinks cannot carry layout=rgbd"),
])
def test_bad_layouts_fail_in_one_line_before_the_model_loads(tmp_path, capsys, uri, message):
    code, stderr = run_in_process(capsys, "run", "--source", "test:?frames=5", "--sink", uri.format(tmp=tmp_path),
                                  "-c", str(tmp_path / "no-such-checkpoint"), *SMALL)
    assert code == 2 and message in stderr and stderr.startswith("rdstream: error: ")
    assert stderr.count("\n") == 1 and "checkpoint" not in stderr


def test_osc_bad_ports_fail_in_one_line_before_the_model_loads(tmp_path, capsys):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy_port = busy.getsockname()[1]
        for option, value, message in [("--osc", str(busy_port), "already in use"), ("--osc", "abc", "numeric port"),
                                       ("--osc", "99999", "1..65535"), ("--osc-status", "x:1", "IP address")]:
            code, stderr = run_in_process(capsys, "run", "--source", "test:?frames=5", "--sink", "null:", option, value,
                                          "-c", str(tmp_path / "no-such-checkpoint"), *SMALL)
            assert code == 2 and message in stderr, (option, value, stderr)
            assert stderr.count("\n") == 1 and "checkpoint" not in stderr
        # The same as a user sees it, once, in a process of its own.
        result = rdstream("run", "--source", "test:?frames=5", "--sink", "null:", "--osc", str(busy_port),
                          "-c", str(tmp_path / "no-such-checkpoint"), *SMALL)
    assert result.returncode == 2 and result.stderr == f"rdstream: error: --osc 127.0.0.1:{busy_port}: cannot listen on UDP 127.0.0.1:{busy_port}: already in use\n"


def test_rdstream_run_takes_osc_commands_and_reports_status(tmp_path, tiny_checkpoint):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer
    from pythonosc.udp_client import SimpleUDPClient

    received: list[tuple[str, list]] = []
    dispatcher = Dispatcher()
    dispatcher.set_default_handler(lambda address, *args: received.append((address, list(args))))
    server = ThreadingOSCUDPServer(("127.0.0.1", 0), dispatcher)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mkv = tmp_path / "depth.mkv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "run", "--source", "test:?size=96x64&rate=30", "--sink", f"file:{mkv}",
         "-c", str(tiny_checkpoint), "--osc", str(port), "--osc-status", f"127.0.0.1:{server.server_address[1]}",
         *SMALL], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    client = SimpleUDPClient("127.0.0.1", port)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if any(address == "/rdstream/status" and args[1] > 0 for address, args in received):
                break  # frames are coming out
            time.sleep(0.2)
        client.send_message("/rdstream/pause", [1])
        client.send_message("/rdstream/zoom", [1.0])  # ignored with a warning
        while time.monotonic() < deadline and not any(args[:1] == ["/rdstream/pause"] for a, args in received if a == "/rdstream/ack"):
            time.sleep(0.1)
        client.send_message("/rdstream/stop", [])
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, stderr
    assert "interrupted:" in stderr and "OSC: ignored '/rdstream/zoom'" in stderr and "Traceback" not in stderr
    assert f"OSC commands on udp 127.0.0.1:{port}" in stderr
    acks = [args for address, args in received if address == "/rdstream/ack"]
    assert [a[0] for a in acks] == ["/rdstream/pause", "/rdstream/stop"], acks
    paused_from = acks[0][1]
    depth = decoded(mkv, "gray16le")
    assert len(depth) > paused_from  # frames went on while paused (the held picture)
    for k in range(paused_from, len(depth)):
        assert np.array_equal(depth[k], depth[paused_from - 1])
    status = [args for address, args in received if address == "/rdstream/status"][-1]
    assert len(status) == 6 and status[3] == 0 and status[4] > status[5]  # near > far
