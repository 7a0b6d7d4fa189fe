"""The model steps: shared noise as the reference draws it, the DDIM closed form, shapes, pooling
of odd latents, the resize on the host or the device (MPS) and its probe."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pipeline.inference import ddim_step, decode_depth, encode_rgb, first_timestep, make_shared_noise, predict_snippets, unet_v
from pipeline.preprocess import prepare_frames, processing_size
from tests.conftest import moving_pattern


def test_shared_noise_is_drawn_exactly_as_the_reference(tiny_model):
    ours = make_shared_noise(tiny_model, (6, 8), seed=7)
    reference = torch.randn((1, 4, 6, 8), generator=torch.Generator("cpu").manual_seed(7), device="cpu", dtype=torch.float32)
    assert torch.equal(ours, reference)


def test_one_step_is_timestep_999_and_equals_the_scheduler_step(tiny_model):
    t = first_timestep(tiny_model)
    assert t == 999
    rgb = torch.randn(1, 3, 4, 6, 8)
    noise = make_shared_noise(tiny_model, (6, 8), seed=0).expand(1, 3, 4, 6, 8)
    v = unet_v(tiny_model, rgb, noise, t)[0]
    scheduler = tiny_model.scheduler
    scheduler.set_timesteps(1)
    expected = scheduler.step(v, scheduler.timesteps[0], noise[0]).prev_sample
    assert torch.allclose(ddim_step(tiny_model, v, noise[0], t, None), expected, atol=1e-6)
    # alpha_bar(999) = 0 after the zero-SNR rescale, so the closed form is 0.99957 * (-v) + 0.02916 * noise
    assert torch.allclose(ddim_step(tiny_model, v, noise[0], t, None), 0.99915**0.5 * -v + 0.00085**0.5 * noise[0], atol=1e-5)


def test_shapes_through_encode_predict_decode(tiny_model):
    frames = np.random.default_rng(0).integers(0, 255, (6, 50, 70, 3), dtype=np.uint8)
    rgb = prepare_frames(frames, 64)
    assert rgb.shape == (6, 3, 48, 64) and rgb.min() >= -1 and rgb.max() <= 1
    latents = encode_rgb(tiny_model, rgb, batch_size=4)
    assert latents.shape == (6, 4, 6, 8)
    depth_latents = predict_snippets(tiny_model, latents.reshape(2, 3, 4, 6, 8), make_shared_noise(tiny_model, (6, 8), 0))
    assert depth_latents.shape == (2, 3, 4, 6, 8)
    depth = decode_depth(tiny_model, depth_latents.flatten(0, 1), batch_size=4)
    assert depth.shape == (6, 48, 64) and depth.dtype == torch.float32


def test_processing_size_rounds_to_multiples_of_8():
    assert processing_size(360, 640, 768) == (432, 768)
    assert processing_size(91, 161, 0) == (88, 160)
    assert processing_size(1080, 1920, 128) == (72, 128)


def test_pooling_odd_latents_by_padding_equals_ceil_mode_pooling():
    from pipeline.inference import pool_latents

    latents = torch.randn(2, 4, 27, 15)
    expected = F.avg_pool2d(latents, 2, ceil_mode=True)  # right on the CPU, wrong on MPS in torch 2.4-2.8
    torch.testing.assert_close(pool_latents(latents, 2), expected)
    assert pool_latents(latents, 2).shape[-2:] == (14, 8)


def test_decode_at_an_odd_latent_has_the_pooled_shape(tiny_model):
    from pipeline.inference import decode_depth

    latents = torch.randn(2, 4, 9, 5)
    coarse = decode_depth(tiny_model, latents, pool=2)
    scale = tiny_model.vae_scale
    assert coarse.shape == (2, 5 * scale, 3 * scale)


def test_resize_on_host_before_upload_matches_the_device_resize():
    from pipeline.inference import prepare_frames_on

    frames = moving_pattern(2, 120, 200)
    on_device = prepare_frames_on(torch.device("cpu"), frames, (48, 80), resize_on_device=True)
    on_host = prepare_frames_on(torch.device("cpu"), frames, (48, 80), resize_on_device=False)
    assert on_host.shape == on_device.shape == (2, 3, 48, 80)
    assert on_host.is_contiguous() and on_device.is_contiguous()
    assert (on_host - on_device).abs().max() <= 2.0 / 255 * 2  # uint8 rounding of the resized pixels


def test_resize_probe_treats_only_not_implemented_as_missing(monkeypatch):
    import pipeline.inference as inference

    probe = inference.device_resizes_antialiased.__wrapped__
    cpu = torch.device("cpu")
    assert probe(cpu)

    def not_implemented(*args, **kwargs):
        raise NotImplementedError("upsample_bilinear2d_aa not implemented for mps")

    monkeypatch.setattr(inference.F, "interpolate", not_implemented)
    assert not probe(cpu)

    def out_of_memory(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(inference.F, "interpolate", out_of_memory)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        probe(cpu)


def test_half_fit_path_decodes_a_quarter_size_and_full_path_full_size(tiny_model):
    from pipeline.inference import decode_depth

    latents = torch.randn(2, 4, 5, 8)
    assert decode_depth(tiny_model, latents).shape == (2, 40, 64)
    assert decode_depth(tiny_model, latents, pool=2).shape == (2, 24, 32)  # ceil(5 / 2) latents high
    assert decode_depth(tiny_model, latents, dtype=None).dtype == tiny_model.dtype
    assert decode_depth(tiny_model, latents[:0]).shape == (0, 40, 64)


def test_prepare_frames_on_device_matches_the_cpu_preprocessing():
    from pipeline.inference import prepare_frames_on
    from pipeline.preprocess import prepare_frames

    frames = moving_pattern(2, 60, 90)
    expected = prepare_frames(frames, 64)
    got = prepare_frames_on(torch.device("cpu"), frames, tuple(expected.shape[-2:]))
    assert torch.allclose(got, expected, atol=1e-5)
