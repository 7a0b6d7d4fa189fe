"""bench.live_cost: its quick run meets the count and FLOP targets; the GPU configurations it
measures, the telling ones first."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_gpu_benchmark_configs_put_the_telling_ones_first():
    import argparse

    from bench.live_cost import gpu_configs

    args = argparse.Namespace(gpu_res=[384, 512], compile=True, channels_last=True)
    names = [c.name for c in gpu_configs(args)]
    assert len(names) == len(set(names)) == 8 + 4 + 8 + 2
    assert names[0] == "384px/16:9/full/lookahead_0/eager"
    assert names[8:12] == [f"384px/16:9/{d}/lookahead_{k}/compile" for d in ("full", "tiny") for k in (0, 2)]
    assert names[-1] == "384px/16:9/tiny/lookahead_2/eager/channels_last"


def test_live_cost_quick_meets_the_count_and_flop_targets():
    result = subprocess.run([sys.executable, "-m", "bench.live_cost", "--quick", "--rounds", "1", "--threads", "1"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    per_frame = report["per_output_frame"]
    assert per_frame["old_decode_everything"]["counts"] == {"encodes": 1, "unet_frame_passes": 6, "decodes_full": 6, "decodes_fit": 0}
    assert per_frame["lookahead_0/full"]["counts"]["decodes_full"] == 2
    assert per_frame["lookahead_2/full"]["counts"]["decodes_full"] == 4
    targets = report["targets_met"]
    assert all(v for k, v in targets.items() if not k.startswith("cpu_")), targets
