"""bench.rungs: its quick run meets the cost targets and every rung outputs every frame."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def test_bench_rungs_meets_the_cost_targets_and_every_rung_outputs_every_frame():
    result = subprocess.run([sys.executable, "-m", "bench.rungs", "--frames", "60", "--size", "64x96"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    costs = report["costs_per_output_frame"]
    assert costs["standard"]["lookahead_2"]["counts"] == {"encodes": 1, "unet_frame_passes": 6, "decodes_full": 4,
                                                         "decodes_fit": 2}
    assert costs["stride2"]["lookahead_2"]["counts"]["unet_frame_passes"] == 3
    met = report["targets_met"]
    assert met["cheapest_lite_tflop_le_2.0"] and met["middle_pair_full_decoder_tflop_le_6.5"]
    for rung in report["synthetic_lookahead_2"]["rungs"].values():
        assert rung["frames_out"] == 60 and rung["finite"]
