"""The node on the real model steps (tiny random checkpoint) against the offline pipeline."""

from __future__ import annotations

import anyio
import numpy as np
import torch

from pipeline.depth_metrics import abs_rel
from pipeline.offline import OfflinePipeline, OfflineSettings
from pipeline.coalign import OnlineAligner
from pipeline.snippets import SnippetPlan
from stream.node import NodeConfig, StreamNode
from stream.model.rolling_depth_steps import RollingDepthSteps
from tests.conftest import moving_pattern
from bench.support.stream_doubles import ArraySource, RecordingSink


class Unchanged:
    """Display stage pass-through, so the node's aligned depth itself is compared."""

    current_range = None

    def __call__(self, depth):
        return depth


def test_node_does_offline_work_once_per_frame_and_matches_offline_depth(tiny_model):
    frames = moving_pattern(24, 64, 96)
    dilations, lookahead = (1, 5), 2
    offline = OfflinePipeline(tiny_model, OfflineSettings(dilations=dilations, res=64, seed=0, cap_dilation=False))(frames)
    steps = RollingDepthSteps(tiny_model, 64, seed=0)
    sink = RecordingSink()
    aligner = OnlineAligner.for_plan(SnippetPlan(3, dilations), lookahead)
    node = StreamNode(ArraySource(frames), [("mem:", sink)], steps, aligner, Unchanged(),
                      NodeConfig(plan=SnippetPlan(3, dilations), lookahead=lookahead), report=print)
    result = anyio.run(node.run)
    assert result.frames_out == 24 and [f.index for f in sink.frames] == list(range(24))
    # the same work as offline: each frame encoded once, the same snippets
    assert steps.counts.encodes == offline.counts["frames_encoded"] == 24
    assert steps.counts.unet_frame_passes == offline.counts["unet_frame_passes"]
    # every UNet frame-pass is decoded once: at full resolution only when it will still be merged
    assert steps.counts.decodes_full + steps.counts.decodes_fit == offline.counts["frames_decoded"]
    assert steps.counts.decodes_fit > 0
    # the same noise as offline (seeded) and depth within 1 AbsRel point of offline
    stream = torch.from_numpy(np.stack([f.depth for f in sink.frames]))
    assert stream.shape == offline.depth.shape
    reference = (torch.from_numpy(offline.depth) + 3.0) / 2.0  # [-1, 1] -> [1, 2]: AbsRel needs > 0
    assert abs_rel(stream, reference) < 0.01
