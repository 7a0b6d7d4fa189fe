"""bench.monitor's parts run: a node with the monitor and the page client in its own process."""

from __future__ import annotations

import numpy as np

from bench.monitor import one_run
from stream.model.model_thread import ModelThread


def test_a_run_with_the_page_client_serves_pictures_and_counts_cpu(tiny_model):
    frames = np.random.default_rng(0).integers(0, 256, (40, 72, 128, 3), dtype=np.uint8)
    model_thread = ModelThread()
    try:
        result = one_run(tiny_model, frames, 64, model_thread, with_page=True)
    finally:
        model_thread.close()
    assert result["frames"] == 40 and result["cpu_ms_per_frame"] > 0
    # The page asked, got pictures, and no picture was encoded that no one asked for.
    assert result["pictures_served"] >= 1 and 1 <= result["previews_encoded"] <= result["pictures_served"]


def test_with_the_monitor_on_but_no_page_open_no_picture_is_encoded(tiny_model):
    import anyio

    from bench.monitor import PLAN, free_port
    from bench.stream import CollectSink
    from bench.support.stream_doubles import ArraySource
    from pipeline.coalign import OnlineAligner
    from stream.stages.display_normalizer import parse_normalize
    from stream.monitor.endpoint import parse_monitor
    from stream.monitor.server import Monitor
    from stream.node import NodeConfig, StreamNode
    from stream.model.rolling_depth_steps import RollingDepthSteps

    frames = np.random.default_rng(1).integers(0, 256, (12, 72, 128, 3), dtype=np.uint8)
    monitor = Monitor(parse_monitor(str(free_port()), None))
    node = StreamNode(ArraySource(frames), [("collect:", CollectSink())], RollingDepthSteps(tiny_model, 64, seed=0),
                      OnlineAligner.for_plan(PLAN, 2), parse_normalize("running"),
                      NodeConfig(plan=PLAN, lookahead=2, drop_frames=False), monitor=monitor)
    result = anyio.run(node.run)
    assert result.frames_out == 12
    assert monitor.preview.encoded == 0 and monitor.preview._frame is not None  # offered, never encoded
