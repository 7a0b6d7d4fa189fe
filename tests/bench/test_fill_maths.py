"""bench.fill_maths and its support: rendered scenes with known depth, the fill metrics, the JSON."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from bench.support.fill_metrics import carry_truth, edge_band, region_abs_rel
from bench.support.rendered_scenes import render_frame, render_scene
from tests.conftest import ROOT



def test_rendered_scenes_are_deterministic_at_any_size():
    first = render_scene(3, (96, 54), "heavy", "fast", seed=3)
    again = render_scene(3, (96, 54), "heavy", "fast", seed=3)
    np.testing.assert_array_equal(first.rgb, again.rgb)
    assert first.rgb.shape == (3, 54, 96, 3) and first.rgb.dtype == np.uint8
    assert first.inverse_depth.shape == (3, 54, 96) and first.inverse_depth.dtype == np.float32
    assert np.isfinite(first.inverse_depth).all() and first.inverse_depth.min() > 0
    _, large = render_frame(0, (192, 108), "heavy", "fast", seed=3)
    # the same picture at twice the size: 2x2 means of the large truth match the small one
    pooled = large.reshape(54, 2, 96, 2).mean(axis=(1, 3))
    assert np.median(np.abs(pooled - first.inverse_depth[0]) / first.inverse_depth[0]) < 0.01
    assert not np.array_equal(first.rgb[0], first.rgb[2])  # the camera moves
    with pytest.raises(ValueError, match="texture"):
        render_frame(0, (8, 8), "glossy")


def test_the_two_texture_levels_differ_in_detail_not_in_depth():
    smooth, heavy = render_scene(1, (128, 72), "smooth"), render_scene(1, (128, 72), "heavy")
    np.testing.assert_array_equal(smooth.inverse_depth, heavy.inverse_depth)
    detail = [np.abs(np.diff(s.rgb[0].astype(float), axis=1)).mean() for s in (smooth, heavy)]
    assert detail[1] > 3 * detail[0]


def test_edge_band_marks_pixels_near_depth_steps_only():
    truth = np.full((20, 40), 0.2, np.float32) + np.linspace(0, 0.1, 20, dtype=np.float32)[:, None]  # a smooth slope
    truth[:, 20:] += 0.5  # one step at column 20
    band = edge_band(truth, radius=3)
    assert band[:, 16:24].all() and not band[:, :16].any() and not band[:, 24:].any()
    assert region_abs_rel(truth * 1.1, truth, band) == pytest.approx(0.1, rel=1e-5)


def test_carry_truth_hold_repeats_keyframes_and_flow_is_exact_on_them():
    scene = render_scene(5, (96, 54), "heavy", "slow")
    held = carry_truth(scene.rgb, scene.inverse_depth, 2, "hold")
    np.testing.assert_array_equal(held[1], scene.inverse_depth[0])
    np.testing.assert_array_equal(held[4], scene.inverse_depth[4])
    flowed = carry_truth(scene.rgb, scene.inverse_depth, 2, "flow")
    np.testing.assert_allclose(flowed[2], scene.inverse_depth[2], atol=1e-6)
    with pytest.raises(ValueError, match="mode"):
        carry_truth(scene.rgb, scene.inverse_depth, 2, "drop")


def test_quick_run_prints_json_with_every_target():
    done = subprocess.run([sys.executable, "-m", "bench.fill_maths", "--quick"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert set(report["targets_met"]) == {
        "interval_4_abs_rel_le_half_of_hold", "interval_4_temporal_error_le_half_of_hold",
        "interval_1_abs_rel_le_1e-3", "flow_warp_le_4ms_at_384x216_one_core",
        "bilinear_upsample_le_5ms_at_1280x720_one_core", "edge_aware_upsampling_wins_near_edges_without_losing_inside",
    }
    assert all(isinstance(v, bool) for v in report["targets_met"].values())
    scene = report["carry"]["scenes"]["heavy_fast"]
    assert set(scene) >= {f"interval_{k}" for k in (1, 2, 4, 8)}
    assert scene["interval_1"]["flow"]["abs_rel"] < 1e-3  # every frame a keyframe: the truth itself
    assert scene["interval_4"]["flow"]["abs_rel_vs_hold"] < 1.0  # carrying beats repeating
    assert report["timing"]["384x216"][report["default_preset"]]["flow_warp_cpu_ms"] > 0
    assert all(line.startswith("bench.fill_maths [") for line in done.stderr.splitlines()), done.stderr
