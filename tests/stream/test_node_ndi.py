"""A real NDI round trip through the node on 127.0.0.1: NDI in -> model -> NDI out (16-bit P216).

As in tests/io_adapters/test_ndi.py, where the machine allows it the test runs in a private network namespace
with only the loopback interface up (``unshare -n``): the outer test starts one child pytest
there, so nothing is announced on, or sent to, a real network.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
import time
from pathlib import Path

import anyio
import numpy as np
import pytest

pytest.importorskip("NDIlib")

from io_adapters.ndi.receiver import NdiReceiver  # noqa: E402
from io_adapters.ndi.sender import NdiSender  # noqa: E402
from io_adapters.ndi.formats import p216_luma  # noqa: E402
from bench.support.netns import INSIDE_ENV, can_unshare_network, private_network_command  # noqa: E402
from io_adapters.registry import open_sink, open_source  # noqa: E402
from stream.stages.display_normalizer import parse_normalize  # noqa: E402
from pipeline.coalign import OnlineAligner  # noqa: E402
from pipeline.snippets import SnippetPlan  # noqa: E402
from stream.node import NodeConfig, StreamNode  # noqa: E402
from stream.model.rolling_depth_steps import RollingDepthSteps  # noqa: E402
from tests.conftest import ROOT  # noqa: E402

RUN_IN_CHILD = os.environ.get(INSIDE_ENV) != "1" and can_unshare_network()
OUTPUT_FRAMES = 8


@pytest.mark.skipif(not RUN_IN_CHILD, reason="private network namespace not available or already inside")
def test_stream_ndi_in_private_network_namespace():
    env = dict(os.environ, **{INSIDE_ENV: "1"})
    child = "import sys, pytest; sys.exit(pytest.main([sys.argv[1], '-q', '-p', 'no:cacheprovider', '-x']))"
    result = subprocess.run(private_network_command(child, str(Path(__file__).resolve())),
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=150)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert re.search(r"1 passed", result.stdout), result.stdout[-3000:]


def _moving_ramp(i: int, height: int = 64, width: int = 96) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    return (((x + 2 * i) % width) / (width - 1) * 0.5 + y / (height - 1) * 0.5).astype(np.float32)


@pytest.mark.skipif(RUN_IN_CHILD, reason="runs inside a private network namespace (see the test above)")
def test_ndi_round_trip_through_the_node(tiny_model):
    tag = os.getpid()
    in_name, out_name = f"rdstream-node-in-{tag}", f"rdstream-node-out-{tag}"
    plan = SnippetPlan(3, (1, 2))

    async def main():
        sender = NdiSender(in_name, 30.0, "bgra", cmap="turbo")  # the "camera": colour frames over NDI
        source = open_source(f"ndi:{in_name}?timeout=15")
        sink = open_sink(f"ndi:{out_name}?format=p216", fps=30.0)
        receiver = NdiReceiver(out_name, "best")
        node = StreamNode(source, [(f"ndi:{out_name}", sink)], RollingDepthSteps(tiny_model, 64, seed=0),
                          OnlineAligner.for_plan(plan, 0), parse_normalize("running"),
                          NodeConfig(plan=plan, lookahead=0, drop_frames=True), report=print)
        stop_sending = threading.Event()
        received = []

        def keep_sending():
            i = 0
            while not stop_sending.is_set():
                sender.send(_moving_ramp(i))  # the SDK clock paces this to 30 fps
                i += 1

        def collect():
            receiver.connect(15.0)
            deadline = time.monotonic() + 60
            while len(received) < OUTPUT_FRAMES and time.monotonic() < deadline:
                frame = receiver.capture(0.5, newest=False)
                if frame is not None and frame.fourcc in ("P216", "PA16"):
                    received.append(frame)

        result = []
        async with anyio.create_task_group() as tg:
            async def run_node():
                result.append(await node.run())

            tg.start_soon(run_node)
            tg.start_soon(anyio.to_thread.run_sync, keep_sending)
            await anyio.to_thread.run_sync(collect)
            node.request_stop()
            stop_sending.set()
        receiver.close()
        sender.close()
        return result[0], received

    result, received = anyio.run(main)
    assert len(received) == OUTPUT_FRAMES, result
    assert result.end_reason == "interrupted" and result.frames_out >= OUTPUT_FRAMES
    assert result.sinks[f"ndi:{out_name}"]["error"] is None
    frame = received[-1]
    assert (frame.height, frame.width) == (40, 64)  # 96x64 input at --res 64 (multiple of 8)
    luma = p216_luma(frame.data, frame.width, frame.height)
    assert luma.dtype == np.uint16 and luma.max() > luma.min()  # a real depth map, not a flat frame
