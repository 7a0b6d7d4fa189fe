"""FLOP counting has one home (bench/flops.py): the cost benchmarks import it, not each other."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.flops import tflop_per_frame
from tests.conftest import ROOT

BENCH = ROOT / "bench"


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_rungs_and_live_cost_count_flops_in_one_place_without_an_import_circle():
    rungs, live_cost = _imports(BENCH / "rungs.py"), _imports(BENCH / "live_cost.py")
    assert "bench.flops" in rungs and "bench.flops" in live_cost
    assert "bench.live_cost" not in rungs  # live_cost may read rungs' ladder; never the other way round
    assert "bench.live_cost" not in _imports(BENCH / "gpu_timing.py")


def test_tflop_per_frame_uses_the_rungs_encoder_and_decoder():
    flops = {"vae_encode": 600.0, "vae_encode/tiny": 60.0, "unet_frame_pass": 500.0, "decode_full/full": 1400.0,
             "decode_fit/full": 350.0, "decode_full/tiny": 80.0, "decode_fit/tiny": 20.0}
    counts = {"encodes": 1, "unet_frame_passes": 6, "decodes_full": 4, "decodes_fit": 2}
    assert tflop_per_frame(counts, flops, "full") == (600 + 3000 + 5600 + 700) / 1000
    assert tflop_per_frame(counts, flops, "tiny", encoder="tiny") == (60 + 3000 + 320 + 40) / 1000
