"""I/O throughput, printed as JSON: ``python -m bench.io [--quick]``.

* file decode -> null: an H.264 clip (written first from the test pattern) read by the file
  source as fast as it decodes, each frame turned into a depth frame and given to ``null:``.
* test: -> NDI (BGRA and P216) at 384 px (384x216) and 1080p (1920x1080): frames from the test
  pattern, encoded and sent by the NDI sink with a real receiver connected on 127.0.0.1.
  The sink is unpaced here (clock=0) and each send waits for the previous frame to leave, so
  the figure is the sender's sustainable rate (no drops). The receiver's count is reported too.

NDI runs in a private network namespace with only loopback (``unshare -n``) where possible,
so nothing reaches a real network; elsewhere it stays on 127.0.0.1 discovery.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio
import numpy as np

from io_adapters.frames import DepthFrame, EndOfStream
from bench.support.netns import INSIDE_ENV, can_unshare_network, private_network_command
from io_adapters.registry import open_sink, open_source
from io_adapters.video_file import iter_video_frames
from io_adapters.video_writers import ColorVideoWriter

NDI_CASES = (("bgra", 384, 216), ("p216", 384, 216), ("bgra", 1920, 1080), ("p216", 1920, 1080))


def _fake_depth(rgb: np.ndarray) -> np.ndarray:
    """A cheap stand-in for the model's output: float32 [H, W] in [0, 1]."""
    return rgb[..., 1].astype(np.float32) * (1.0 / 255.0)


async def _wait_sent(sink, count: int) -> None:
    with anyio.fail_after(30):
        while sink.sent < count:
            await anyio.sleep(0.0005)


def bench_file_decode(frames: int, width: int, height: int) -> dict:
    """Decode fps of an H.264 file: raw decoder loop, and file source -> null sink."""
    with tempfile.TemporaryDirectory() as folder:
        clip = Path(folder) / "clip.mp4"

        async def write_clip():
            async with open_source(f"test:?frames={frames}&size={width}x{height}&rate=30", realtime=False) as source:
                with ColorVideoWriter(clip, 30.0) as writer:
                    while True:
                        try:
                            writer.write((await source.recv()).rgb)
                        except EndOfStream:
                            break

        anyio.run(write_clip)

        async def to_null():
            source = open_source(str(clip))
            sink = open_sink("null:")
            count = 0
            started = time.perf_counter()
            try:
                while True:
                    frame = await source.recv()
                    await sink.send(DepthFrame(frame.index, frame.timestamp, _fake_depth(frame.rgb), frame.rgb))
                    count += 1
            except EndOfStream:
                pass
            await sink.close()
            elapsed = time.perf_counter() - started
            await source.close()
            return count, elapsed, sink.dropped

        count, elapsed, dropped = anyio.run(to_null)
        # After the source run, so both read a warm file cache and decoder.
        started = time.perf_counter()
        decoded = sum(1 for _ in iter_video_frames(clip))
        raw_s = time.perf_counter() - started
    return {
        "size": f"{width}x{height}",
        "frames": count,
        "decode_only_fps": round(decoded / raw_s, 1),
        "source_to_null_fps": round(count / elapsed, 1),
        "null_dropped": dropped,
    }


def bench_ndi(fmt: str, width: int, height: int, frames: int) -> dict:
    """test: -> NDI sink (``fmt``) with a receiver connected; sender fps without drops."""
    from io_adapters.ndi.receiver import NdiReceiver

    name = f"rdstream-bench-{fmt}-{height}-{os.getpid()}"

    async def main():
        source = open_source(f"test:?size={width}x{height}&rate=30", realtime=False)
        sink = open_sink(f"ndi:{name}?format={fmt}&clock=0", fps=30.0)
        receiver = NdiReceiver(name, "best" if fmt == "p216" else "rgb")
        await anyio.to_thread.run_sync(receiver.connect, 10.0)
        with anyio.fail_after(10):
            while sink.sender.connections() < 1:
                await anyio.sleep(0.01)
        received = []
        stop = threading.Event()

        def receive():
            while not stop.is_set():
                if receiver.capture(0.2, stop, newest=False) is not None:
                    received.append(1)

        depths = [_fake_depth((await source.recv()).rgb) for _ in range(min(frames, 30))]
        async with anyio.create_task_group() as group:
            group.start_soon(anyio.to_thread.run_sync, receive)
            started = time.perf_counter()
            for i in range(frames):
                await sink.send(DepthFrame(i, i / 30, depths[i % len(depths)]))
                await _wait_sent(sink, i + 1)
            elapsed = time.perf_counter() - started
            await anyio.sleep(0.3)  # let the last frames arrive
            stop.set()
        receiver.close()
        await sink.close()
        await source.close()
        return elapsed, len(received), sink.dropped

    elapsed, received, dropped = anyio.run(main)
    return {
        "format": fmt,
        "size": f"{width}x{height}",
        "frames": frames,
        "send_fps": round(frames / elapsed, 1),
        "received": received,
        "dropped": dropped,
    }


def run_ndi_cases(quick: bool) -> list[dict]:
    results = []
    for fmt, width, height in NDI_CASES:
        frames = (20 if quick else 60) if height <= 400 else (8 if quick else 20)
        results.append(bench_ndi(fmt, width, height, frames))
    return results


def _ndi_cases_isolated(quick: bool) -> tuple[list[dict] | None, str]:
    """NDI cases in a private loopback-only network namespace when possible."""
    try:
        import NDIlib  # noqa: F401
    except ImportError:
        return None, "ndi-python not installed"
    if os.environ.get(INSIDE_ENV) == "1" or not can_unshare_network():
        return run_ndi_cases(quick), "127.0.0.1 discovery (no private network namespace here)"
    code = "import json, sys; from bench.io import run_ndi_cases; print(json.dumps(run_ndi_cases(sys.argv[1] == 'quick')))"
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, **{INSIDE_ENV: "1"})
    result = subprocess.run(
        private_network_command(code, "quick" if quick else "full"),
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )
    if result.returncode != 0:
        return None, "NDI bench failed: " + (result.stderr.strip().splitlines() or ["?"])[-1]
    return json.loads(result.stdout.strip().splitlines()[-1]), "private network namespace, loopback only"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer frames (a smoke run)")
    args = parser.parse_args()
    file_result = bench_file_decode(90 if args.quick else 300, 640, 360)
    ndi_results, ndi_network = _ndi_cases_isolated(args.quick)
    print(json.dumps({
        "bench": "io",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": sys.version.split()[0]},
        "file_decode_to_null": file_result,
        "ndi": ndi_results,
        "ndi_network": ndi_network,
    }, indent=2))


if __name__ == "__main__":
    main()
