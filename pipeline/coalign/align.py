"""Co-alignment of depth snippets into one video (docs/method.md, section 5): the one entry point for every solver.

Each snippet k (depth ``[L_k, H, W]`` covering frames ``frame_indices[k]``) is only known up to its
own scale ``s_k`` and shift ``t_k``. Co-alignment finds them so that overlapping snippets agree, then
merges: each frame is the plain mean of ``s_k * (x_k - global_min) + t_k`` over the snippets covering
it, at full resolution. ``normalize_to_unit_range`` then maps the whole video to ``[-1, 1]``.

Solvers (``method``):
- ``"adam"``: the reference optimiser (Adam on the section-5 objective) with the quality modes'
  early stop; ``quality="reference"`` runs the reference's fixed 2000 steps.
- ``"exact"``: solves the consensus directly (``pipeline.coalign.exact``), far faster.

Example::

    result = align_snippets(depths, frame_indices, num_frames, method="exact", quality="balanced")
    video = normalize_to_unit_range(result.depth)   # [N, H, W] in [-1, 1]
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from pipeline.coalign.adam import solve_adam
from pipeline.coalign.objective import objective_terms
from pipeline.coalign.exact import solve_exact
from pipeline.coalign.quality import QUALITIES, EarlyStop, adam_early_stop, exact_settings
from pipeline.coalign.snippet_set import SnippetSet, fit_samples, stride_for_min_pixels, validate_snippets
from pipeline.errors import BadInputError
from pipeline.normalize import normalize_to_unit_range

__all__ = [
    "AlignResult",
    "METHODS",
    "QUALITIES",
    "align_snippets",
    "merge_snippets",
    "normalize_to_unit_range",
    "objective",
]

METHODS = ("exact", "adam")
#: The exact solver subsamples less on frames so small that its stride would leave fewer pixels.
EXACT_MIN_FIT_PIXELS = 64


@dataclass(frozen=True)
class AlignResult:
    """Result of ``align_snippets``.

    Attributes:
        scales: float32 ``[K]`` (CPU), scale of each snippet, applied to its min-subtracted depth.
        shifts: float32 ``[K]`` (CPU), shift of each snippet.
        depth: float32 ``[N, H, W]`` on the snippets' device: the merged video before the final
            normalisation (inverse depth, larger = nearer, in the units the solver chose).
        loss: the docs/method.md, section 5 objective (regulariser included) at ``scales``, ``shifts``.
        iterations: Adam steps, or least-squares solves for ``"exact"``.
        seconds: wall time of the solve (fit preprocessing included, merge excluded).
        cpu_seconds: CPU time of this process over the same span; on a shared machine it is the
            steadier measure of cost (it leaves out time spent waiting for a core).
    """

    scales: torch.Tensor
    shifts: torch.Tensor
    depth: torch.Tensor
    loss: float
    iterations: int
    seconds: float
    cpu_seconds: float = 0.0


def objective(
    depths: Sequence[torch.Tensor | np.ndarray],
    frame_indices: Sequence[Sequence[int]],
    num_frames: int,
    scales: torch.Tensor | Sequence[float],
    shifts: torch.Tensor | Sequence[float],
) -> float:
    """The docs/method.md, section 5 objective (linear + inverse + regulariser) of one solution, as a float.

    Args:
        depths: K snippets ``[L_k, H, W]`` (any float dtype and device).
        frame_indices: K strictly increasing frame lists, each in ``[0, num_frames)``.
        num_frames: N.
        scales, shifts: ``[K]`` per-snippet scale and shift (applied to the min-subtracted depth).
    """
    snippets = validate_snippets(depths, frame_indices, num_frames)
    samples = fit_samples(snippets)
    scales_t, shifts_t = _as_parameters(scales, shifts, snippets.num_snippets, samples.values.device)
    with torch.no_grad():
        return float(objective_terms(samples, scales_t, shifts_t).total)


def align_snippets(
    depths: Sequence[torch.Tensor | np.ndarray],
    frame_indices: Sequence[Sequence[int]],
    num_frames: int,
    method: str = "exact",
    quality: str = "balanced",
    device_type: str = "cpu",
    max_iter: int | None = None,
) -> AlignResult:
    """Co-align K depth snippets and merge them into ``[num_frames, H, W]``.

    Args:
        depths: K tensors (or arrays) ``[L_k, H, W]``, any float dtype (fp16 is computed in fp32)
            and device; the merge runs on the device of ``depths[0]``.
        frame_indices: K frame lists; list k has L_k strictly increasing ints in ``[0, num_frames)``.
        num_frames: N; every frame must be covered by at least one snippet.
        method: ``"exact"`` (default) or ``"adam"`` (the reference optimiser).
        quality: ``"fast"``, ``"balanced"`` or ``"quality"``; for adam also ``"reference"``
            (2000 steps, no early stop).
        device_type: picks the Adam early-stop table of docs/method.md, section 5: ``"cuda"`` uses the CUDA
            values, ``"cpu"`` and ``"mps"`` the MPS values. Ignored by ``"exact"``.
        max_iter: optional cap on Adam steps (tests and benchmarks); ignored by ``"exact"``,
            whose quality mode sets its pixel stride, most solves and tolerance.

    Raises:
        BadInputError: bad snippets (see ``pipeline.coalign.snippet_set.validate_snippets``), or an
            unknown method or quality.
    """
    if method not in METHODS:
        raise BadInputError(f"co-alignment: method {method!r} is not one of {', '.join(METHODS)}")
    if max_iter is not None and (isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1):
        raise BadInputError(f"co-alignment: max_iter must be a positive int, got {max_iter!r}")
    snippets = validate_snippets(depths, frame_indices, num_frames)
    start, cpu_start = time.perf_counter(), time.process_time()
    if method == "adam":
        stop = adam_early_stop(quality, device_type)
        if max_iter is not None:
            stop = EarlyStop(stop.patience, min(stop.min_iter, int(max_iter)), stop.threshold, int(max_iter))
        samples = fit_samples(snippets)
        solution = solve_adam(samples, stop)
        scales, shifts, iterations = solution.scales, solution.shifts, solution.iterations
    else:
        settings = exact_settings(quality)
        # small frames: a denser grid, so each frame still has enough pixels to fix a scale
        stride = stride_for_min_pixels(snippets.height, snippets.width, settings.stride, EXACT_MIN_FIT_PIXELS)
        exact = solve_exact(fit_samples(snippets, stride, device="cpu"), settings)
        scales, shifts, iterations = exact.scales, exact.shifts, exact.solves
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    if method == "exact":
        samples = fit_samples(snippets)  # the objective is always measured on the reference's samples
    with torch.no_grad():
        loss = float(objective_terms(samples, scales.to(samples.values.device), shifts.to(samples.values.device)).total)
    scales, shifts = scales.detach().float().cpu(), shifts.detach().float().cpu()
    return AlignResult(
        scales=scales,
        shifts=shifts,
        depth=merge_snippets(snippets, scales, shifts, samples.global_min),
        loss=loss,
        iterations=iterations,
        seconds=seconds,
        cpu_seconds=cpu_seconds,
    )


def merge_snippets(snippets: SnippetSet, scales: torch.Tensor, shifts: torch.Tensor, offset: float) -> torch.Tensor:
    """Plain mean of the aligned snippets per frame at full resolution: float32 ``[N, H, W]``.

    Snippet k contributes ``scales[k] * (depth_k - offset) + shifts[k]`` to each frame it covers;
    ``offset`` is the global minimum the fit subtracted. Runs on the device of the first snippet,
    one snippet at a time so no ``[K, L, H, W]`` stack is ever built.
    """
    device = snippets.depths[0].device
    total = torch.zeros(snippets.num_frames, snippets.height, snippets.width, dtype=torch.float32, device=device)
    for depth, frames, scale, shift in zip(snippets.depths, snippets.frame_indices, scales.tolist(), shifts.tolist()):
        aligned = (depth.to(device=device, dtype=torch.float32) - offset) * scale + shift
        steps = {b - a for a, b in zip(frames[:-1], frames[1:])}
        if len(steps) <= 1:  # evenly spaced (every planned snippet): a strided view, no index upload
            total[frames[0] : frames[-1] + 1 : steps.pop() if steps else 1] += aligned
        else:
            total.index_add_(0, torch.tensor(frames, device=device), aligned)
    counts = torch.from_numpy(snippets.coverage()).to(device=device, dtype=torch.float32)
    return total / counts[:, None, None]


def _as_parameters(scales, shifts, count: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    scales_t = torch.as_tensor(scales, dtype=torch.float32).reshape(-1).to(device)
    shifts_t = torch.as_tensor(shifts, dtype=torch.float32).reshape(-1).to(device)
    if scales_t.numel() != count or shifts_t.numel() != count:
        raise BadInputError(
            f"co-alignment: need {count} scales and shifts (one per snippet), got {scales_t.numel()} and {shifts_t.numel()}"
        )
    return scales_t, shifts_t
