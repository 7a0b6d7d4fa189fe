"""The model steps of RollingDepth (docs/method.md, sections 1 and 3), shared by the offline and live paths.

encode_rgb: RGB [N, 3, H, W] in [-1, 1] -> latents [N, 4, H/8, W/8] (each frame encoded once).
predict_snippets: snippet latents [B, L, 4, h, w] + shared noise -> depth latents, one UNet pass.
decode_depth: depth latents [M, 4, h, w] -> depth [M, H, W], roughly [-1, 1], inverse depth, with the
    model's decoder (full VAE or tiny, see pipeline.tiny_decoder); ``pool=2`` decodes a 2x average-pooled
    latent instead (a quarter of the pixels and of the cost), the cheap path for fit-only frames.
prepare_frames_on: uint8 frames -> model input [N, 3, H', W'] in [-1, 1], resized on the model's device
    (or on the CPU before upload where the device cannot resize antialiased: ``device_resizes_antialiased``).

Layout: every tensor here is contiguous NCHW on purpose (the uint8 frame's permute would otherwise
carry channels_last strides into the VAE encoder and mix layouts with the UNet).
The timestep is a tensor made once (``timestep_tensor``), not per UNet call: building it from a
Python number is a host-to-device copy each time.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from pipeline.checkpoint import RollingDepthModel
from pipeline.preprocess import resample_mode, resize
from pipeline.tiny_decoder import LATENT_SCALE, DepthDecoder

__all__ = ["LATENT_SCALE", "decode_depth", "ddim_step", "device_resizes_antialiased", "encode_depth", "encode_rgb",
           "first_timestep", "make_shared_noise", "pool_latents", "predict_snippets", "prepare_frames_on",
           "resize_on_host", "timestep_tensor", "unet_v"]


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
    a_t, a_prev = _alphas(model.scheduler, t, t_prev)
    x0 = a_t**0.5 * sample - (1 - a_t) ** 0.5 * v
    eps = (1 - a_t) ** 0.5 * sample + a_t**0.5 * v
    return a_prev**0.5 * x0 + (1 - a_prev) ** 0.5 * eps


def timestep_tensor(model: RollingDepthModel, t: int) -> torch.Tensor:
    """Timestep ``t`` as the 0-d tensor on the model's device the UNet takes (make it once, reuse it)."""
    return torch.tensor(t, device=model.device)


_ALPHAS: dict[int, tuple[object, dict]] = {}


def _alphas(scheduler, t: int, t_prev: int | None) -> tuple[float, float]:
    """alpha_bar at t and t_prev as Python floats, read once per scheduler and pair (not per call)."""
    held = _ALPHAS.get(id(scheduler))
    if held is None or held[0] is not scheduler:
        held = _ALPHAS[id(scheduler)] = (scheduler, {})
    cache = held[1]
    if (t, t_prev) not in cache:
        alphas = scheduler.alphas_cumprod
        a_prev = float(alphas[t_prev]) if t_prev is not None and t_prev >= 0 else float(scheduler.final_alpha_cumprod)
        cache[(t, t_prev)] = (float(alphas[t]), a_prev)
    return cache[(t, t_prev)]


@torch.no_grad()
def unet_v(model: RollingDepthModel, rgb_latents: torch.Tensor, depth_latents: torch.Tensor,
           t: int | torch.Tensor) -> torch.Tensor:
    """The UNet's v-prediction for snippets: [B, L, 4, h, w] each -> [B, L, 4, h, w].

    t: the timestep, best as a tensor from ``timestep_tensor`` (an int costs a copy to the device).
    """
    b, length = rgb_latents.shape[:2]
    x = torch.cat([rgb_latents, depth_latents], dim=2).flatten(0, 1).to(model.dtype)
    context = model.text_embedding.expand(b * length, -1, -1)
    timestep = t if isinstance(t, torch.Tensor) else timestep_tensor(model, t)
    v = model.unet(x, timestep, encoder_hidden_states=context, cross_attention_kwargs={"num_frames": length}).sample
    return v.unflatten(0, (b, length))


def first_timestep(model: RollingDepthModel) -> int:
    """The single timestep of one-step inference (999 with trailing spacing)."""
    return model.one_step_timestep


@torch.no_grad()
def predict_snippets(model: RollingDepthModel, rgb_latents: torch.Tensor, noise: torch.Tensor,
                     timestep: torch.Tensor | None = None) -> torch.Tensor:
    """One-step depth latents for snippets: rgb_latents [B, L, 4, h, w], noise [1, 4, h, w] -> [B, L, 4, h, w].

    At t = 999 alpha_bar is 0 (zero-SNR), so the input depth latent is the pure shared noise.
    timestep: ``timestep_tensor(model, first_timestep(model))`` made once by the caller (None = made here).
    """
    t = first_timestep(model)
    sample = noise.expand(rgb_latents.shape[:2] + noise.shape[1:]).to(model.dtype)
    v = unet_v(model, rgb_latents, sample, t if timestep is None else timestep)
    return ddim_step(model, v, sample, t, None)


@torch.no_grad()
def decode_depth(model: RollingDepthModel, latents: torch.Tensor, batch_size: int = 4, pool: int = 1,
                 dtype: torch.dtype | None = torch.float32, decoder: DepthDecoder | None = None) -> torch.Tensor:
    """[M, 4, h, w] depth latents -> depth [M, H, W] with the model's decoder (mean of its 3 output channels).

    pool: 1 = full resolution; 2 = decode the 2x average-pooled latent (``pool_latents``: an odd edge
        keeps its last latent alone), giving [M, 8 * ceil(h / 2), 8 * ceil(w / 2)] at a quarter of the
        cost; pixel (i, j) of it covers full-resolution pixels (2i, 2j) to (2i + 1, 2j + 1), except
        the last row/column of 8 pixels from an unpaired latent, which covers 8 full-resolution
        pixels (``pipeline.coalign.fit_grid.FitGrid.sample`` reads it so).
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
            batch = pool_latents(batch, pool)
        out.append(decoder(batch).to(dtype or model.dtype))
    return torch.cat(out)


def pool_latents(latents: torch.Tensor, pool: int) -> torch.Tensor:
    """[M, C, h, w] -> [M, C, ceil(h / pool), ceil(w / pool)] average-pooled; a partial window at an odd
    edge averages only the latents it has (the values of ``avg_pool2d(ceil_mode=True)``).

    Computed by padding the edge by replication to a multiple of ``pool`` and pooling without
    ``ceil_mode``: ceil_mode pooling returns wrong values on MPS in torch 2.4-2.8 (PyTorch issue
    160743), and one code path on every device keeps the CPU tests meaningful for MPS.
    """
    h, w = latents.shape[-2:]
    pad_h, pad_w = -h % pool, -w % pool
    if pad_h or pad_w:
        if pool != 2:  # replication equals the partial-window mean only for one missing row/column
            raise ValueError(f"pool_latents: odd latent sizes need pool 2, got {pool}")
        latents = F.pad(latents, (0, pad_w, 0, pad_h), mode="replicate")
    return F.avg_pool2d(latents, pool)


def prepare_frames_on(device: torch.device, frames: np.ndarray, size: tuple[int, int],
                      method: str = "bilinear", resize_on_device: bool | None = None) -> torch.Tensor:
    """uint8 [N, H, W, 3] RGB -> float32 contiguous [N, 3, H', W'] in [-1, 1] at ``size``, on ``device``.

    Only uint8 pixels cross to the device (a quarter of the bytes of float32). resize_on_device:
    None = where ``device_resizes_antialiased(device)`` (probed once per device); False = the
    frames are resized as uint8 on the CPU and the smaller frames uploaded (what a device without
    antialiased resizing, e.g. MPS on older torch, does).
    """
    if resize_on_device is None:
        resize_on_device = device.type == "cpu" or device_resizes_antialiased(device)
    if not resize_on_device and tuple(frames.shape[1:3]) != tuple(size):
        frames = resize_on_host(frames, size, method)
    images = torch.from_numpy(np.ascontiguousarray(frames)).to(device)
    # permute gives channels_last strides: make the float image contiguous NCHW (the layout everywhere)
    images = images.permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format).float()
    images = resize(images, size, method)
    return images.clamp_(0, 255) / 255.0 * 2.0 - 1.0


def resize_on_host(frames: np.ndarray, size: tuple[int, int], method: str = "bilinear") -> np.ndarray:
    """uint8 [N, H, W, 3] -> uint8 [N, H', W', 3] resized on the CPU (antialiased when shrinking).

    Bilinear resizes the uint8 pixels directly (torch's fast uint8 path, ~15x cheaper than float);
    other methods go through float32 and are rounded back.
    """
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if resample_mode(method) == "bilinear":
        out = F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)
    else:
        out = resize(images.float(), size, method).round_().clamp_(0, 255).to(torch.uint8)
    return np.ascontiguousarray(out.permute(0, 2, 3, 1).numpy())


OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)  # torch.OutOfMemoryError from 2.5


@functools.lru_cache(maxsize=None)
def device_resizes_antialiased(device: torch.device) -> bool:
    """Whether ``device`` has antialiased bilinear resizing (MPS has it only in recent torch), probed
    once per device with a tiny resize. Only "not implemented" errors mean no; anything else (out of
    memory, a broken device) is raised."""
    probe = torch.zeros(1, 3, 16, 16, device=device)
    try:
        F.interpolate(probe, size=(7, 7), mode="bilinear", align_corners=False, antialias=True)
    except NotImplementedError:
        return False
    except RuntimeError as err:
        if isinstance(err, OUT_OF_MEMORY) or "not implemented" not in str(err).lower():
            raise
        return False
    return True


@torch.no_grad()
def encode_depth(model: RollingDepthModel, depth: torch.Tensor, batch_size: int = 4) -> torch.Tensor:
    """Depth [M, H, W] (roughly [-1, 1]) -> latents [M, 4, h, w], the depth repeated to 3 channels."""
    return encode_rgb(model, depth.unsqueeze(1).expand(-1, 3, -1, -1), batch_size)
