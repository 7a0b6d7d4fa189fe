"""Refinement of co-aligned depth by a few more diffusion steps (docs/method.md, section 6; presets full, paper)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from pipeline.checkpoint import RollingDepthModel, scheduler_timesteps
from pipeline.errors import BadInputError
from pipeline.inference import ddim_step, decode_depth, encode_depth, unet_v
from pipeline.snippets import cap_dilation


def refine_dilations(steps: int, start_dilation: int) -> list[int]:
    """Dilation per step: gap = int((1 - i / T) * (start - 1)), dilation = gap + 1 (6 -> 6,5,5,4,4,3,3,2,1,1)."""
    return [int((1 - i / steps) * (start_dilation - 1)) + 1 for i in range(steps)]


def refine_timesteps(model: RollingDepthModel, steps: int) -> list[int]:
    """Schedule 2 * steps trailing timesteps and keep the second half (10 steps: 499, 449, ..., 49)."""
    return scheduler_timesteps(model.scheduler, 2 * steps)[steps:]


def covering_dilation(num_frames: int, snip_len: int, dilation: int) -> int:
    """The largest dilation <= ``dilation`` whose stride-1 snippets cover every frame.

    Frames not covered by any snippet would not be denoised at that step; the reference leaves this
    case undefined (it only happens on clips shorter than about 3 x the dilation).
    """
    # Covered exactly when the last snippet start, N - (L-1) d - 1, reaches frame d - 1: L d <= N.
    # In closed form, as a loop down from a huge --refine-start-dilation would not end.
    return max(1, min(dilation, num_frames // snip_len)) if dilation > 1 else dilation


def check_refine_clip(num_frames: int, snip_len: int) -> None:
    """A refinement snippet must fit in the clip: ``BadInputError`` when ``snip_len > num_frames``."""
    if snip_len > num_frames:
        raise BadInputError(
            f"--refine-snippet-len {snip_len}: the clip has only {num_frames} frames; use a refinement snippet "
            f"of at most {num_frames} frames, or --refine-step 0"
        )


def refine_schedule(num_frames: int, steps: int, snip_len: int = 3, start_dilation: int = 6,
                    cap: bool = True) -> list[int]:
    """The dilation each refinement step uses on a clip of ``num_frames``.

    With ``cap`` (the reference's cap_dilation) the start dilation is capped like the snippet
    dilations, by ``int(N / snip_len) - 1`` (N=20, L=3: 6 -> 5, giving 5,4,4,3,3,3,2,2,1,1 for 10
    steps); each step's dilation is then lowered where needed so that its snippets cover every frame
    (``covering_dilation``).
    """
    check_refine_clip(num_frames, snip_len)
    start = cap_dilation(start_dilation, num_frames, snip_len) if cap else start_dilation
    return [covering_dilation(num_frames, snip_len, d) for d in refine_dilations(steps, start)]


@torch.no_grad()
def refine_depth(
    model: RollingDepthModel,
    rgb_latents: torch.Tensor,
    depth: torch.Tensor,
    noise: torch.Tensor,
    steps: int = 10,
    snip_len: int = 3,
    start_dilation: int = 6,
    batch_size: int = 4,
    progress: Callable[[str, int, int], None] | None = None,
    cap: bool = True,
) -> tuple[torch.Tensor, int]:
    """Refine co-aligned depth [N, H, W] in [-1, 1]; returns (depth [N, H, W] clipped to [-1, 1], UNet frame-passes).

    1. Encode the depth (repeated to 3 channels). 2. Noise it to the first kept timestep with the
    shared noise [1, 4, h, w]. 3. At each step, run every snippet (stride 1, that step's dilation) on
    the previous step's latents, DDIM-step it to the next timestep and average each frame's latent
    over the snippets that contain it. 4. Decode. Values are clipped to [-1, 1] (no renormalisation).
    rgb_latents: [N, 4, h, w] on the model's device. cap: cap the start dilation for short clips
    (see ``refine_schedule``). Raises ``BadInputError`` when ``snip_len`` exceeds the clip's frames.
    progress(stage, advance, total): "refine" once per step, then "refine decode" per decoded batch
    of frames; the final decode costs as much as several steps, so it has its own count and ETA.
    """
    num_frames = depth.shape[0]
    dilations = refine_schedule(num_frames, steps, snip_len, start_dilation, cap)
    timesteps = refine_timesteps(model, steps)
    latents = encode_depth(model, depth.to(model.device), batch_size)
    a_t = float(model.scheduler.alphas_cumprod[timesteps[0]])
    latents = a_t**0.5 * latents + (1 - a_t) ** 0.5 * noise
    passes = 0
    snippets_per_call = max(1, batch_size // snip_len)
    for i, (t, d) in enumerate(zip(timesteps, dilations)):
        t_next = timesteps[i + 1] if i + 1 < len(timesteps) else None
        offsets = torch.arange(snip_len, device=model.device) * d
        starts = torch.arange(num_frames - (snip_len - 1) * d, device=model.device)
        total = torch.zeros_like(latents, dtype=torch.float32)
        count = torch.zeros(num_frames, device=model.device)
        for chunk in starts.split(snippets_per_call):
            index = chunk[:, None] + offsets[None, :]  # [B, L]
            v = unet_v(model, rgb_latents[index], latents[index], t)
            stepped = ddim_step(model, v, latents[index], t, t_next).float()
            total.index_add_(0, index.flatten(), stepped.flatten(0, 1))
            count.index_add_(0, index.flatten(), torch.ones(index.numel(), device=model.device))
            passes += index.numel()
        latents = (total / count[:, None, None, None]).to(model.dtype)
        if progress:
            progress("refine", 1, steps)
    decoded = []
    for start in range(0, num_frames, max(1, batch_size)):
        decoded.append(decode_depth(model, latents[start : start + batch_size], batch_size))
        if progress:
            progress("refine decode", decoded[-1].shape[0], num_frames)
    return torch.cat(decoded).clamp_(-1, 1), passes
