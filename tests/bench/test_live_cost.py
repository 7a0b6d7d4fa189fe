"""bench.live_cost: the GPU configurations it measures, the telling ones first."""

from __future__ import annotations


def test_gpu_benchmark_configs_put_the_telling_ones_first():
    import argparse

    from bench.live_cost import gpu_configs

    args = argparse.Namespace(gpu_res=[384, 512], compile=True, channels_last=True)
    names = [c.name for c in gpu_configs(args)]
    assert len(names) == len(set(names)) == 8 + 4 + 8 + 2
    assert names[0] == "384px/16:9/full/lookahead_0/eager"
    assert names[8:12] == [f"384px/16:9/{d}/lookahead_{k}/compile" for d in ("full", "tiny") for k in (0, 2)]
    assert names[-1] == "384px/16:9/tiny/lookahead_2/eager/channels_last"
