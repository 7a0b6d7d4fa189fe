"""The reference co-alignment objective of docs/method.md, section 5, on preprocessed fit samples.

For frame n and fit pixel p the target ``T[n, p]`` is the mean of ``s_k * x_k[n, p] + t_k`` over the
snippets k covering n, held constant (no gradient). ``c_n = mean_p |T[n, p]|``.

- linear term: sum over entries of ``|s_k x + t_k - T| / c_n``, divided by ``slots * N * P``, i.e. the
  mean over a padded ``[slots, N, P]`` tensor in which missing (snippet-slot, frame) pairs count as 0;
  ``slots`` is the sum of the levels' snippet lengths (one slot per position in a snippet per
  dilation level, see ``FitSamples.slots``), not the most snippets covering a frame;
- inverse term: the same on ``1 / clamp(s_k x + t_k, min=1e-3)`` against its own target and c_n;
- regulariser, summed over dilation levels: ``0.1 * mean(max(0, 1 - s)^2) + 10 * mean(t^2)``;
- total = linear + 1.0 * inverse + regulariser.

``c_n`` is clamped to ``>= 1e-12`` so an all-zero frame gives a finite loss (the reference divides
by zero there).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.coalign.snippet_set import FitSamples

INVERSE_CLAMP = 1e-3
INVERSE_WEIGHT = 1.0
SCALE_REG_WEIGHT = 0.1
SHIFT_REG_WEIGHT = 10.0
_MIN_TARGET_MAGNITUDE = 1e-12


@dataclass(frozen=True)
class ObjectiveTerms:
    """The three parts of the objective as 0-d tensors (they carry gradients to s and t)."""

    linear: torch.Tensor
    inverse: torch.Tensor
    regulariser: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.linear + INVERSE_WEIGHT * self.inverse + self.regulariser


def frame_means(samples: FitSamples, entry_values: torch.Tensor) -> torch.Tensor:
    """Mean over the entries of each frame: ``[E, P]`` -> ``[N, P]``."""
    sums = torch.zeros(
        samples.num_frames, entry_values.shape[1], dtype=entry_values.dtype, device=entry_values.device
    )
    sums.index_add_(0, samples.frame_of_entry, entry_values)
    return sums / samples.entries_per_frame.to(entry_values.dtype)[:, None]


def _consensus_term(samples: FitSamples, predictions: torch.Tensor) -> torch.Tensor:
    """Normalised L1 distance of every entry to its frame's (detached) mean target."""
    target = frame_means(samples, predictions.detach())
    magnitude = target.abs().mean(dim=1).clamp_min(_MIN_TARGET_MAGNITUDE)
    frame_of = samples.frame_of_entry
    residual = (predictions - target[frame_of]).abs() / magnitude[frame_of, None]
    return residual.sum() / (samples.slots * samples.num_frames * samples.pixels)


def _regulariser(samples: FitSamples, scales: torch.Tensor, shifts: torch.Tensor) -> torch.Tensor:
    counts = torch.bincount(samples.level_of_snippet, minlength=samples.num_levels).to(scales.dtype)
    scale_pen = torch.zeros(samples.num_levels, dtype=scales.dtype, device=scales.device)
    shift_pen = torch.zeros_like(scale_pen)
    scale_pen = scale_pen.index_add(0, samples.level_of_snippet, torch.relu(1.0 - scales) ** 2)
    shift_pen = shift_pen.index_add(0, samples.level_of_snippet, shifts**2)
    return ((SCALE_REG_WEIGHT * scale_pen + SHIFT_REG_WEIGHT * shift_pen) / counts).sum()


def objective_terms(samples: FitSamples, scales: torch.Tensor, shifts: torch.Tensor) -> ObjectiveTerms:
    """Objective of per-snippet ``scales [K]`` and ``shifts [K]`` (float32, samples' device)."""
    k = samples.snippet_of_entry
    aligned = scales[k, None] * samples.values + shifts[k, None]
    inverse = 1.0 / aligned.clamp_min(INVERSE_CLAMP)
    return ObjectiveTerms(
        linear=_consensus_term(samples, aligned),
        inverse=_consensus_term(samples, inverse),
        regulariser=_regulariser(samples, scales, shifts),
    )
