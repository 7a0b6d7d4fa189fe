"""Refinement progress covers its final decode: the ETA of the steps alone left the decode of
every frame (as long as several steps) uncounted, so a 47 s estimate took 150 s."""

from __future__ import annotations

import torch

from pipeline.diffusion_refine import refine_depth
from pipeline.inference import encode_rgb


def test_refinement_reports_its_steps_then_the_decode_of_every_frame(tiny_model):
    frames, size = 6, 32
    torch.manual_seed(0)
    rgb = torch.rand(frames, 3, size, size, device=tiny_model.device, dtype=tiny_model.dtype) * 2 - 1
    rgb_latents = encode_rgb(tiny_model, rgb, 4)
    depth = torch.rand(frames, size, size) * 2 - 1
    noise = torch.randn(1, *rgb_latents.shape[1:], device=tiny_model.device, dtype=tiny_model.dtype)
    calls = []
    refined, _ = refine_depth(tiny_model, rgb_latents, depth, noise, steps=2, snip_len=3, start_dilation=1,
                              batch_size=4, progress=lambda *call: calls.append(call))
    assert refined.shape == (frames, size, size)
    assert calls == [("refine", 1, 2), ("refine", 1, 2), ("refine decode", 4, frames), ("refine decode", 2, frames)]
