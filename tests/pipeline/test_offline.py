"""The offline pipeline on the tiny random model: counts, range, reproducibility, refinement."""

import numpy as np
import pytest

from pipeline.errors import BadInputError
from pipeline.offline import OfflinePipeline, OfflineSettings
from pipeline.diffusion_refine import refine_timesteps
from tests.conftest import moving_pattern

FRAMES = moving_pattern(30, 48, 64)


def run(model, **kw):
    settings = OfflineSettings(**{"res": 64, "seed": 1, **kw})
    return OfflinePipeline(model, settings)(FRAMES)


def test_counts_and_exact_unit_range(tiny_model):
    result = run(tiny_model)
    # N = 30, L = 3: dilation 1 -> 28 snippets; 25 capped to int(30/3)-1 = 9 -> 12 snippets
    assert result.counts["snippets"] == 40
    assert result.counts["frames_encoded"] == 30
    assert result.counts["unet_frame_passes"] == result.counts["frames_decoded"] == 120
    assert result.depth.shape == (30, 48, 64) and result.depth.dtype == np.float32
    assert result.depth.min() == -1.0 and result.depth.max() == 1.0


def test_same_seed_same_depth_and_other_seed_differs(tiny_model):
    a, b, c = run(tiny_model), run(tiny_model), run(tiny_model, seed=2)
    assert np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.depth, c.depth)


def test_snippets_are_kept_per_requested_dilation(tiny_model):
    result = run(tiny_model, keep_snippets=True)
    assert set(result.snippets) == {"dilation1", "dilation25"}
    assert result.snippets["dilation25"].shape == (12, 3, 48, 64)


def test_refinement_runs_with_its_schedule(tiny_model):
    assert refine_timesteps(tiny_model, 10) == list(range(499, 0, -50))
    result = run(tiny_model, dilations=(1, 10), refine_steps=2, refine_start_dilation=3)
    assert result.counts["refine_unet_frame_passes"] > 0
    assert result.depth.min() >= -1 and result.depth.max() <= 1
    assert "refine" in result.seconds


@pytest.mark.parametrize("method, quality", [("adam", "fast"), ("exact", "balanced")])
def test_coalignment_methods(tiny_model, method, quality):
    result = run(tiny_model, coalign=method, quality=quality)
    assert result.counts["coalign_iterations"] >= 1
    assert np.isfinite(result.depth).all()


@pytest.mark.parametrize(
    "settings, message",
    [({"res": -5}, "--res -5"), ({"max_vae_bs": 0}, "--max-vae-bs"), ({"coalign": "sgd"}, "--coalign sgd"),
     ({"quality": "best"}, "--quality best")],
)
def test_bad_settings_are_rejected_up_front(tiny_model, settings, message):
    with pytest.raises(BadInputError, match=message):
        OfflinePipeline(tiny_model, OfflineSettings(**settings))


def test_short_clip_caps_the_refinement_start_dilation_like_the_reference(tiny_model):
    # N = 12, L = 3: the start dilation 6 is capped to int(12 / 3) - 1 = 3, so the 10 steps use
    # dilations 3,2,2,2,2,2,1,1,1,1 and run 12 - 2d snippets of 3 frames each
    schedule = [3, 2, 2, 2, 2, 2, 1, 1, 1, 1]
    result = OfflinePipeline(tiny_model, OfflineSettings(res=64, seed=1, dilations=(1,), refine_steps=10))(FRAMES[:12])
    assert result.counts["refine_unet_frame_passes"] == sum((12 - 2 * d) * 3 for d in schedule)


def test_refinement_snippet_longer_than_the_clip_is_bad_input(tiny_model):
    settings = OfflineSettings(res=64, dilations=(1,), refine_steps=2, refine_snippet_len=4)
    with pytest.raises(BadInputError, match="--refine-snippet-len 4: the clip has only 3 frames"):
        OfflinePipeline(tiny_model, settings)(FRAMES[:3])


def test_offline_unet_batch_is_independent_of_max_vae_bs(tiny_model, monkeypatch):
    import pipeline.offline as offline

    calls = []
    real = offline.predict_snippets
    monkeypatch.setattr(offline, "predict_snippets",
                        lambda m, lat, noise, *rest: calls.append(lat.shape[0]) or real(m, lat, noise, *rest))
    frames = moving_pattern(12, 40, 64)
    result = offline.OfflinePipeline(tiny_model, offline.OfflineSettings(dilations=(1, 3), res=64, max_vae_bs=1,
                                                                         unet_bs=4, seed=0))(frames)
    assert max(calls) == 4 and result.depth.shape == (12, 40, 64)
