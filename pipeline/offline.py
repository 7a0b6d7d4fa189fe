"""Offline RollingDepth: a whole clip of RGB frames to co-aligned depth (docs/method.md, sections 3-7).

``OfflinePipeline(model, settings)(frames)`` reads as numbered steps: check inputs, plan snippets,
draw the shared noise, encode every frame once, predict and decode each snippet, co-align, refine
(presets full and paper), normalise. The result is a typed ``OfflineResult``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.checkpoint import RollingDepthModel
from pipeline.coalign import METHODS, align_snippets, normalize_to_unit_range
from pipeline.coalign.quality import check_quality
from pipeline.errors import BadInputError
from pipeline.inference import (decode_depth, encode_rgb, first_timestep, make_shared_noise, predict_snippets,
                                prepare_frames_on, timestep_tensor)
from pipeline.preprocess import check_res, processing_size, resample_mode
from pipeline.diffusion_refine import check_refine_clip, refine_depth
from pipeline.snippets import SnippetLevel, check_snippet_options, check_strides, plan_snippets

# progress(stage, advance, total): called as work is done; stage names are STAGES.
ProgressCallback = Callable[[str, int, int], None]
STAGES = ("encode", "snippets", "coalign", "refine", "refine decode")
# Refinement schedules 2 x its steps on the scheduler's 1000 training timesteps (``refine_timesteps``),
# and the scheduler takes at most that many.
MAX_REFINE_STEPS = 500


@dataclass(frozen=True)
class OfflineSettings:
    """Everything that shapes an offline run (defaults: preset fast, exact co-alignment).

    dilations: snippet dilations, 1 included. snip_len: frames per snippet (2..4).
    strides: snippet stride per dilation (same order; () = 1 each, the reference's), see ``plan_snippets``.
    res: longer edge of the processing size in pixels (0 = native; rounded to a multiple of 8).
    refine_steps: 0 = no refinement. max_vae_bs: frames per VAE batch. unet_bs: snippets per UNet call.
    seed: the shared noise seed (None = random). coalign: "exact" or "adam"; quality: fast,
    balanced or quality. unload_snippet: keep decoded snippets in CPU memory instead of on the device.
    keep_snippets: return the decoded snippets (for --save-snippets).
    """

    dilations: tuple[int, ...] = (1, 25)
    snip_len: int = 3
    strides: tuple[int, ...] = ()
    cap_dilation: bool = True
    res: int = 768
    resample_method: str = "bilinear"
    refine_steps: int = 0
    refine_snippet_len: int = 3
    refine_start_dilation: int = 6
    max_vae_bs: int = 4
    seed: int | None = None
    coalign: str = "exact"
    quality: str = "balanced"
    unload_snippet: bool = False
    keep_snippets: bool = False
    unet_bs: int = 4

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass
class OfflineResult:
    """depth: float32 [N, H', W'] in [-1, 1] (inverse depth, 1 = nearest) at the processing size.

    snippets: with keep_snippets, {"dilation{requested}": float32 [n, L, H', W']}, before co-alignment.
    seconds: per stage. counts: frames_encoded, unet_frame_passes, frames_decoded, coalign_iterations,
    snippets (and refine_unet_frame_passes).
    """

    depth: np.ndarray
    snippets: dict[str, np.ndarray] | None
    seconds: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so stage timings are honest (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()


def check_settings(settings: OfflineSettings) -> None:
    """Validate every setting once, when the settings are made; each problem with its own message."""
    check_res(settings.res)
    check_snippet_options(settings.snip_len, settings.dilations)
    if settings.strides:
        check_strides(settings.snip_len, settings.dilations, settings.strides)
    if settings.max_vae_bs < 1:
        raise BadInputError(f"--max-vae-bs {settings.max_vae_bs}: must be at least 1")
    if settings.unet_bs < 1:
        raise BadInputError(f"--unet-bs {settings.unet_bs}: must be at least 1")
    if settings.coalign not in METHODS:
        raise BadInputError(f"--coalign {settings.coalign}: use one of {', '.join(METHODS)}")
    check_quality(settings.quality)
    if not 0 <= settings.refine_steps <= MAX_REFINE_STEPS:
        raise BadInputError(f"--refine-step {settings.refine_steps}: must be 0 (off) to {MAX_REFINE_STEPS} (refinement "
                            "schedules twice its steps on the model's 1000 diffusion timesteps)")
    if settings.refine_steps and not 2 <= settings.refine_snippet_len <= 4:
        raise BadInputError(f"--refine-snippet-len {settings.refine_snippet_len}: must be 2, 3 or 4")
    if settings.refine_start_dilation < 1:
        raise BadInputError(f"--refine-start-dilation {settings.refine_start_dilation}: must be at least 1")
    resample_mode(settings.resample_method)


class OfflinePipeline:
    """Runs RollingDepth on one clip held in memory. See the module docstring for the steps."""

    def __init__(self, model: RollingDepthModel, settings: OfflineSettings | None = None):
        settings = settings or OfflineSettings()  # checked when it was made
        self.model = model
        self.settings = settings

    def __call__(self, frames: np.ndarray, progress: ProgressCallback | None = None) -> OfflineResult:
        """frames: uint8 [N, H, W, 3] RGB. Returns an OfflineResult (see its docstring)."""
        s, model = self.settings, self.model
        report = progress or (lambda stage, advance, total: None)
        seconds: dict[str, float] = {}
        counts: dict[str, int] = {}

        # 1. Check inputs and plan the snippets (a clip too short gives a clear error here).
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise BadInputError(f"expected uint8 RGB frames [N, H, W, 3], got {frames.dtype} {frames.shape}")
        num_frames = frames.shape[0]
        plans = plan_snippets(num_frames, s.dilations, s.snip_len, s.cap_dilation, s.strides or None)
        if s.refine_steps:
            check_refine_clip(num_frames, s.refine_snippet_len)
        height, width = processing_size(frames.shape[1], frames.shape[2], s.res)
        latent_hw = (height // model.vae_scale, width // model.vae_scale)

        # 2. The shared noise map: drawn once per video, before any other random draw.
        noise = make_shared_noise(model, latent_hw, s.seed)

        # 3. Encode every frame once (preprocessing per batch, on the model's device from the uint8
        #    frames, keeps memory at one batch of pixels).
        start = time.perf_counter()
        latents = []
        for first in range(0, num_frames, s.max_vae_bs):
            rgb = prepare_frames_on(model.device, frames[first : first + s.max_vae_bs], (height, width), s.resample_method)
            latents.append(encode_rgb(model, rgb, s.max_vae_bs))
            report("encode", rgb.shape[0], num_frames)
        rgb_latents = torch.cat(latents)
        synchronize(model.device)
        seconds["encode"] = time.perf_counter() - start
        counts["frames_encoded"] = num_frames

        # 4. Predict and decode every snippet of every dilation.
        start = time.perf_counter()
        depths, indices, per_level = self._predict_all(plans, rgb_latents, noise, report)
        synchronize(model.device)
        seconds["snippets"] = time.perf_counter() - start
        counts["snippets"] = len(depths)
        counts["unet_frame_passes"] = counts["frames_decoded"] = sum(len(f) for f in indices)

        # 5. Co-align the snippets and merge them into one video, normalised to [-1, 1].
        start = time.perf_counter()
        report("coalign", 0, 1)
        aligned = align_snippets(depths, indices, num_frames, method=s.coalign, quality=s.quality,
                                 device_type=model.device.type)
        depth = normalize_to_unit_range(aligned.depth.float())
        report("coalign", 1, 1)
        seconds["coalign"] = time.perf_counter() - start
        counts["coalign_iterations"] = aligned.iterations
        snippets = {k: torch.stack(v).float().cpu().numpy() for k, v in per_level.items()} if s.keep_snippets else None
        del depths, per_level

        # 6. Refinement (presets full and paper): a few more diffusion steps on the aligned depth.
        if s.refine_steps:
            start = time.perf_counter()
            depth, passes = refine_depth(
                model, rgb_latents, depth, noise, s.refine_steps, s.refine_snippet_len,
                s.refine_start_dilation, s.max_vae_bs,
                progress=report, cap=s.cap_dilation,
            )
            synchronize(model.device)
            seconds["refine"] = time.perf_counter() - start
            counts["refine_unet_frame_passes"] = passes
            counts["frames_encoded"] += num_frames  # the aligned depth is encoded once
            counts["frames_decoded"] += num_frames

        # 7. Postprocess: float32 on the CPU, exactly within [-1, 1].
        result = depth.float().clamp_(-1, 1).cpu().numpy()
        return OfflineResult(depth=result, snippets=snippets, seconds=seconds, counts=counts)

    def _predict_all(self, plans: list[SnippetLevel], rgb_latents: torch.Tensor, noise: torch.Tensor, report):
        """Every snippet's decoded depth [L, H, W] (in the model's dtype; the merge works in float32),
        its frame indices, and the per-level stacks."""
        s, model = self.settings, self.model
        store = torch.device("cpu") if s.unload_snippet else model.device
        per_call = s.unet_bs  # snippets per UNet call; the decoder batches by --max-vae-bs on its own
        total = sum(len(p.frames) for p in plans)
        depths: list[torch.Tensor] = []
        indices: list[tuple[int, ...]] = []
        per_level: dict[str, list[torch.Tensor]] = {}
        timestep = timestep_tensor(model, first_timestep(model))  # once, not per UNet call
        for plan in plans:
            level = per_level.setdefault(f"dilation{plan.requested}", [])
            frames_of_level = torch.tensor(plan.frames, device=rgb_latents.device)  # one upload per level
            for first in range(0, len(plan.frames), per_call):
                chunk = plan.frames[first : first + per_call]
                index = frames_of_level[first : first + per_call]
                depth_latents = predict_snippets(model, rgb_latents[index], noise, timestep)
                decoded = decode_depth(model, depth_latents.flatten(0, 1), s.max_vae_bs, dtype=None)
                decoded = decoded.unflatten(0, (len(chunk), s.snip_len)).to(store)
                for frames_of_snippet, depth in zip(chunk, decoded):
                    depths.append(depth)
                    indices.append(frames_of_snippet)
                    level.append(depth)
                report("snippets", len(chunk), total)
        return depths, indices, per_level
