"""The model steps of RollingDepth (docs/method.md, sections 1 and 3), shared by the offline and live paths.

encode_rgb: RGB [N, 3, H, W] in [-1, 1] -> latents [N, 4, H/8, W/8] (each frame encoded once).
predict_snippets: snippet latents [B, L, 4, h, w] + shared noise -> depth latents, one UNet pass.
decode_depth: depth latents [M, 4, h, w] -> depth [M, H, W], roughly [-1, 1], inverse depth, with the
    model's decoder (full VAE or tiny, see pipeline.tiny_decoder); ``pool=2`` decodes a 2x average-pooled
    latent instead (a quarter of the pixels and of the cost), the cheap path for fit-only frames.
prepare_frames_on: uint8 frames -> model input [N, 3, H', W'] in [-1, 1], resized on the model's device.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.checkpoint import RollingDepthModel
from pipeline.preprocess import resize
from pipeline.tiny_decoder import LATENT_SCALE, DepthDecoder

__all__ = ["LATENT_SCALE", "decode_depth", "ddim_step", "encode_depth", "encode_rgb", "first_timestep",
           "make_shared_noise", "predict_snippets", "prepare_frames_on", "unet_v"]


def make_shared_noise(model: RollingDepthModel, latent_hw: tuple[int, int], seed: int | None = None) -> torch.Tensor:
    """The one noise map [1, 4, h, w] shared by every frame of a video (drawn once, before any other draw).

    With a seed it is drawn exactly as the reference does, so runs can be compared with it.
    """
    h, w = latent_hw
    generator = torch.Generator(device=model.device).manual_seed(seed) if seed is not None else None
    return torch.randn((1, 4, h, w), generator=generator, device=model.device, dtype=model.dtype)


@torch.no_grad()
def encode_rgb(model: RollingDepthModel, rgb: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """[N, 3, H, W] in [-1, 1] -> [N, 4, H/s, W/s] diffusion-space latents with the model's encoder
    (the SD VAE: mean of the posterior x 0.18215; or a tiny one, see pipeline.tiny_encoder)."""
    out = []
    for start in range(0, rgb.shape[0], max(1, batch_size)):
        batch = rgb[start : start + batch_size].to(device=model.device, dtype=model.dtype)
        out.append(model.encoder(batch))
    return torch.cat(out)


def ddim_step(model: RollingDepthModel, v: torch.Tensor, sample: torch.Tensor, t: int, t_prev: int | None) -> torch.Tensor:
    """Deterministic DDIM step (eta 0) for v-prediction from timestep t to t_prev (None = final alpha).

    Closed form of diffusers' DDIMScheduler.step(): x0 = sqrt(a_t) x_t - sqrt(1 - a_t) v,
    eps = sqrt(1 - a_t) x_t + sqrt(a_t) v, x_prev = sqrt(a_prev) x0 + sqrt(1 - a_prev) eps.
    """
    alphas = model.scheduler.alphas_cumprod
    a_t = float(alphas[t])
    a_prev = float(alphas[t_prev]) if t_prev is not None and t_prev >= 0 else float(model.scheduler.final_alpha_cumprod)
    x0 = a_t**0.5 * sample - (1 - a_t) ** 0.5 * v
    eps = (1 - a_t) ** 0.5 * sample + a_t**0.5 * v
    return a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps


@torch.no_grad()
def unet_v(model: RollingDepthModel, rgb_latents: torch.Tensor, depth_latents: torch.Tensor, t: int) -> torch.Tensor:
    """The UNet's v-prediction for snippets: [B, L, 4, h, w] each -> [B, L, 4, h, w]."""
    b, length = rgb_latents.shape[:2]
    x = torch.cat([rgb_latents, depth_latents], dim=2).flatten(0, 1).to(model.dtype)
    context = model.text_embedding.expand(b * length, -1, -1)
    timestep = torch.tensor(t, device=model.device)
    v = model.unet(x, timestep, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": length}).sample
    return v.unflatten(0, (b, length))


def first_timestep(model: RollingDepthModel) -> int:
    """The single timestep of one-step inference (999 with trailing spacing)."""
    return model.one_step_timestep


@torch.no_grad()
def predict_snippets(model: RollingDepthModel, rgb_latents: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """One-step depth latents for snippets: rgb_latents [B, L, 4, h, w], noise [1, 4, h, w] -> [B, L, 4, h, w].

    At t = 999 alpha_bar is 0 (zero-SNR), so the input depth latent is the pure shared noise.
    """
    t = first_timestep(model)
    sample = noise.expand(rgb_latents.shape[:2] + noise.shape[1:]).to(model.dtype)
    v = unet_v(model, rgb_latents, sample, t)
    return ddim_step(model, v, sample, t, None)


@torch.no_grad()
def decode_depth(model: RollingDepthModel, latents: torch.Tensor, batch_size: int = 4, pool: int = 1,
                 dtype: torch.dtype | None = torch.float32, decoder: DepthDecoder | None = None) -> torch.Tensor:
    """[M, 4, h, w] depth latents -> depth [M, H, W] with the model's decoder (mean of its 3 output channels).

    pool: 1 = full resolution; 2 = decode the 2x average-pooled latent (ceil mode: an odd edge keeps
        its last latent), giving [M, 8 * ceil(h / 2), 8 * ceil(w / 2)] at a quarter of the cost; pixel
        (i, j) of it covers full-resolution pixels (2i, 2j) to (2i + 1, 2j + 1).
    dtype: of the result (None = the model's dtype, how snippets are held before the merge).
    decoder: another decoder than the model's (``rdstream dev compare-decoders``).
    """
    decoder = decoder or model.decoder
    if latents.shape[0] == 0:
        h, w = (-(-n // pool) * model.vae_scale for n in latents.shape[-2:])
        return torch.empty(0, h, w, device=model.device, dtype=dtype or model.dtype)
    out = []
    for start in range(0, latents.shape[0], max(1, batch_size)):
        batch = latents[start : start + batch_size].to(device=model.device, dtype=model.dtype)
        if pool > 1:
            batch = F.avg_pool2d(batch, pool, ceil_mode=True)
        out.append(decoder(batch).to(dtype or model.dtype))
    return torch.cat(out)


def prepare_frames_on(device: torch.device, frames: np.ndarray, size: tuple[int, int],
                      method: str = "bilinear") -> torch.Tensor:
    """uint8 [N, H, W, 3] RGB -> float32 [N, 3, H', W'] in [-1, 1] at ``size``, computed on ``device``.

    Only the uint8 frame crosses to the device (a quarter of the bytes of float32). A device
    without antialiased resizing (older MPS builds) resizes on the CPU instead.
    """
    images = torch.from_numpy(np.ascontiguousarray(frames)).to(device, non_blocking=True)
    images = images.permute(0, 3, 1, 2).float()
    try:
        images = resize(images, size, method)
    except (NotImplementedError, RuntimeError):
        if device.type == "cpu":
            raise
        images = resize(images.cpu(), size, method).to(device)
    return images.clamp_(0, 255) / 255.0 * 2.0 - 1.0


@torch.no_grad()
def encode_depth(model: RollingDepthModel, depth: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """Depth [M, H, W] (roughly [-1, 1]) -> latents [M, 4, h, w], the depth repeated to 3 channels."""
    return encode_rgb(model, depth.unsqueeze(1).expand(-1, 3, -1, -1), batch_size)
