"""A rough time for an offline run before it starts: the model work a clip needs (counted from its
snippet plan), the work per frame (GFLOP, measured on the real model's shapes: docs/method.md,
section 12, scaled to the loaded model by its parameter counts) and the rate this processor gives
now (a short matrix-product measurement, so a busy machine gets a longer estimate).

Rough on purpose: it tells a person "seconds", "minutes" or "an hour" before they wait, and how
much ``--res`` or ``--preset live`` would save; it is not a benchmark.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.errors import BadInputError
from pipeline.snippets import plan_snippets

# GFLOP per frame of the real model at a square side (docs/method.md, section 12):
# side -> (UNet frame-pass, VAE decode, VAE encode).
REAL_GFLOP_PER_FRAME = {256: (176.0, 622.0, 273.0), 384: (418.0, 1406.0, 620.0), 512: (797.0, 2515.0, 1117.0),
                        768: (2138.0, 5754.0, 2609.0)}
# The real model's parameter counts (millions): the UNet, the VAE's decoder and its encoder (each
# with its 1x1 convolution), to scale the table to another model (a test model, a tiny decoder).
REAL_UNET_M, REAL_DECODER_M, REAL_ENCODER_M = 865.9, 49.49, 34.16


@dataclass(frozen=True)
class ModelWork:
    """Model calls counted in frames: VAE encodes, UNet frame-passes, depth decodes."""

    encodes: int
    unet_passes: int
    decodes: int

    def gflop(self, height: int, width: int, scale: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> float:
        """Total GFLOP at a processing size [H, W]; ``scale``: (UNet, decoder, encoder) relative to
        the real model's (``model_scale``)."""
        unet, decode, encode = gflop_per_frame(height, width)
        return (self.unet_passes * unet * scale[0] + self.decodes * decode * scale[1]
                + self.encodes * encode * scale[2])


def gflop_per_frame(height: int, width: int) -> tuple[float, float, float]:
    """(UNet frame-pass, decode, encode) GFLOP of the real model for one [H, W] frame: the table's
    per-pixel cost interpolated in pixel count (attention makes it grow a little with size), the
    nearest end's beyond it."""
    sides = sorted(REAL_GFLOP_PER_FRAME)
    pixels = np.array([s * s for s in sides], dtype=np.float64)
    area = float(height * width)
    per_pixel = [np.interp(area, pixels, [REAL_GFLOP_PER_FRAME[s][k] / (s * s) for s in sides]) for k in range(3)]
    return tuple(float(p * area) for p in per_pixel)


def offline_work(num_frames: int, dilations, snip_len: int, cap_dilation: bool, strides=None, refine_steps: int = 0,
                 refine_snippet_len: int = 3, refine_start_dilation: int = 6) -> ModelWork | None:
    """What ``OfflinePipeline`` runs on a clip of ``num_frames``: one encode per frame, every
    snippet's frames through the UNet and the decoder, and for refinement (presets full, paper) one
    snippet pass per step plus an encode and a decode of every frame. None when the clip is too
    short for the plan (the pipeline says why when it runs)."""
    try:
        levels = plan_snippets(num_frames, dilations, snip_len, cap_dilation, strides)
    except BadInputError:
        return None
    snippet_frames = sum(len(level.frames) for level in levels) * snip_len
    encodes, unet, decodes = num_frames, snippet_frames, snippet_frames
    for step in range(refine_steps):  # the dilation shrinks from refine_start_dilation to 1
        gap = int((1 - step / refine_steps) * (refine_start_dilation - 1))
        unet += max(0, num_frames - (refine_snippet_len - 1) * (gap + 1)) * refine_snippet_len
    if refine_steps:
        encodes, decodes = encodes + num_frames, decodes + num_frames
    return ModelWork(encodes, unet, decodes)


def _millions(module) -> float:
    return sum(p.numel() for p in module.parameters()) / 1e6 if isinstance(module, torch.nn.Module) else 0.0


def model_scale(model) -> tuple[float, float, float]:
    """(UNet, decoder, encoder) of a loaded ``RollingDepthModel`` relative to the real model's, by
    parameter count: about 1 for the real checkpoint, far less for the tiny test checkpoint or a
    tiny decoder (``AutoencoderTiny``)."""
    def part(wrapper, attribute: str, conv: str) -> float:
        tiny = getattr(wrapper, "autoencoder", None)
        if tiny is not None:
            return _millions(getattr(tiny, attribute, None))
        return _millions(getattr(model.vae, attribute, None)) + _millions(getattr(model.vae, conv, None))

    return (_millions(model.unet) / REAL_UNET_M, part(model.decoder, "decoder", "post_quant_conv") / REAL_DECODER_M,
            part(model.encoder, "encoder", "quant_conv") / REAL_ENCODER_M)


def measure_gflops(seconds: float = 0.3, size: int = 512) -> float:
    """GFLOP/s of float32 matrix products on the CPU now, over about ``seconds``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b  # the first call sets up threads and buffers
    runs, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        a @ b
        runs += 1
    return 2.0 * size ** 3 * runs / elapsed / 1e9


def rough_duration(seconds: float) -> str:
    """'under a minute', 'about 4 min', 'about 2.5 h'."""
    if seconds < 60:
        return "under a minute"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min"
    return f"about {seconds / 3600:.1f} h"
