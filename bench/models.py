"""Models for benchmarks: the tiny random checkpoint and the full-size SD2-shaped model with RANDOM weights.

Neither gives depth: their weights are random. They exist so that timings and counts of the real
code paths can be measured without the real weights (docs/method.md, section 1 gives the shapes used here).

Example::

    model = build_random_sd2_model()                      # 865.9M UNet + 83.7M VAE, fp32, CPU
    tiny = load_tiny_model(tmp_dir)                      # written with write_tiny_checkpoint
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.attention import enable_cross_frame_attention
from pipeline.checkpoint import RollingDepthModel, load_rolling_depth
from pipeline.tiny_checkpoint import ROLLINGDEPTH_SCHEDULER, write_tiny_checkpoint

# The RollingDepth UNet: Stable Diffusion 2's, with 8 input channels (RGB latent + depth latent).
SD2_UNET = dict(
    sample_size=96,
    in_channels=8,
    out_channels=4,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
    attention_head_dim=(5, 10, 20, 20),
    cross_attention_dim=1024,
    use_linear_projection=True,
    norm_num_groups=32,
)
# Stable Diffusion 2's VAE.
SD2_VAE = dict(
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
    layers_per_block=2,
    latent_channels=4,
    norm_num_groups=32,
    sample_size=768,
    scaling_factor=0.18215,
)
# Parameter counts of the real checkpoint (docs/method.md, section 1), to check the shapes above against.
SD2_UNET_PARAMS_M = 865.9
SD2_VAE_PARAMS_M = 83.7
TEXT_TOKENS = 2  # the empty prompt: BOS, EOS


def count_parameters_m(module: torch.nn.Module) -> float:
    """Number of parameters in millions, rounded to 0.1 M."""
    return round(sum(p.numel() for p in module.parameters()) / 1e6, 1)


def build_random_sd2_model(
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    seed: int = 0,
) -> RollingDepthModel:
    """The full-size RollingDepth model (SD2 shapes) with RANDOM weights, built in memory.

    Cross-frame attention is installed as for a loaded checkpoint. The text embedding is a random
    [1, 2, 1024] tensor: the text encoder only ever produces this one constant, so its values do
    not matter for timing. The depth it gives is meaningless (is_tiny=True marks that).
    """
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel

    device = torch.device(device)
    # building a bench model must not shift later draws (on the CPU or the GPU it is built on)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        with device:  # made and initialised where they run: a GPU initialises 950M weights in a blink
            unet = UNet2DConditionModel(**SD2_UNET)
            vae = AutoencoderKL(**SD2_VAE)
        text_embedding = torch.randn(1, TEXT_TOKENS, SD2_UNET["cross_attention_dim"])
    for module in (unet, vae):
        if dtype != torch.float32:  # a no-op cast would only make diffusers print a warning
            module.to(dtype=dtype)
        module.to(device=device).eval().requires_grad_(False)
    enable_cross_frame_attention(unet)
    return RollingDepthModel(
        unet=unet,
        vae=vae,
        scheduler=DDIMScheduler(**ROLLINGDEPTH_SCHEDULER),
        text_embedding=text_embedding.to(device=device, dtype=dtype),
        device=device,
        dtype=dtype,
        vae_scale=2 ** (len(SD2_VAE["block_out_channels"]) - 1),
        is_tiny=True,  # random weights: every consumer must treat its output as not depth
        source="random SD2-shaped weights (built in memory, not a checkpoint)",
    )


def load_tiny_model(folder: str | Path, device: torch.device | str = "cpu", dtype: torch.dtype | None = None) -> RollingDepthModel:
    """Write the tiny random checkpoint into ``folder`` and load it with the real loading code."""
    write_tiny_checkpoint(folder)
    return load_rolling_depth(str(folder), device=device, dtype=dtype)
