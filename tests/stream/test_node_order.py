"""The node keeps one predict in flight ahead of the one it awaits, and runs as fast as the benchmark's order.

A model double on a simulated GPU (``QueuedDeviceSteps``): queueing a predict costs the host a fixed
time, the work then takes a fixed time on one device queue. Awaiting each result before queueing
the next frame costs host + device per frame; the pipelined order costs max(host, device).
"""

from __future__ import annotations

import anyio
import numpy as np

from bench.gpu_timing import pipelined_and_node_order_fps
from bench.support.stream_doubles import FakeSteps, ListSource, QueuedDeviceSteps, RecordingSink, make_aligner
from pipeline.snippets import SnippetPlan
from stream.stages.display_normalizer import parse_normalize
from stream.node import NodeConfig, StreamNode

HOST_S, DEVICE_S = 0.015, 0.03


def _run(steps, frames: int, plan: SnippetPlan, lookahead: int = 2):
    sink = RecordingSink()
    config = NodeConfig(plan=plan, lookahead=lookahead, drop_frames=False)
    node = StreamNode(ListSource(frames), [("sink:", sink)], steps, make_aligner(plan, lookahead),
                      parse_normalize("running"), config, report=lambda line: None)
    return anyio.run(node.run), sink


def test_next_frames_snippets_are_queued_before_the_previous_result_is_read():
    steps = QueuedDeviceSteps(host_s=0.005, device_s=0.02)
    plan = SnippetPlan(3, (1, 4))
    try:
        result, sink = _run(steps, 20, plan)
    finally:
        steps.close()
    calls = steps.calls
    predicts = sum(1 for kind, _ in calls if kind == "start")
    assert predicts == 20 - 2  # one per frame once a snippet fits
    ahead = [calls.index(("start", k)) < calls.index(("finish", k - 1)) for k in range(1, predicts - 1)]
    assert sum(ahead) >= 0.8 * len(ahead), calls  # (nearly) always one queued ahead of the awaited one
    finishes = [k for kind, k in calls if kind == "finish"]
    assert finishes == sorted(finishes)  # results are read in the order they were queued
    # the same frames and values as a model that answers at once
    _, plain = _run(FakeSteps(), 20, plan)
    assert [f.index for f in sink.frames] == [f.index for f in plain.frames] == list(range(20))
    for ours, theirs in zip(sink.frames, plain.frames):
        np.testing.assert_array_equal(ours.depth, theirs.depth)


def test_node_runs_as_fast_as_the_pipelined_order():
    plan, lookahead, frames = SnippetPlan(3, (1,)), 2, 40
    rgb = np.zeros((32, 48, 3), np.uint8)
    steps = QueuedDeviceSteps(HOST_S, DEVICE_S)
    try:
        benchmark, stages = pipelined_and_node_order_fps(steps, rgb, plan, lookahead, frames)
        _, sink = _run(steps, frames + 5, plan, lookahead)
    finally:
        steps.close()
    times = sink.arrived[5:]  # after the start-up: the whole node's output rate, aligner and sinks included
    node = (len(times) - 1) / (times[-1] - times[0])
    awaited_each_frame = 1.0 / (HOST_S + DEVICE_S)  # the old order
    assert benchmark > 1.3 * awaited_each_frame, benchmark
    assert stages >= 0.9 * benchmark, (stages, benchmark)
    print(f"pipelined {benchmark:.1f} fps, node stages {stages:.1f}, whole node {node:.1f}, awaiting each {awaited_each_frame:.1f}")
    assert node >= 0.8 * benchmark, (node, benchmark)  # generous: the aligner and sinks share the host
