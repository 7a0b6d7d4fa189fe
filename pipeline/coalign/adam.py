"""The reference co-alignment optimiser (docs/method.md, section 5): Adam on the section-5 objective.

Scales start at 1, shifts at 0; Adam with lr 1e-3 and betas (0.5, 0.9) runs until the quality
mode's early stop (``pipeline.coalign.quality.EarlyStop``) or its ``max_iter``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from pipeline.coalign.objective import objective_terms
from pipeline.coalign.quality import EarlyStop
from pipeline.coalign.snippet_set import FitSamples

LEARNING_RATE = 1e-3
BETAS = (0.5, 0.9)


@dataclass(frozen=True)
class AdamSolution:
    """Fitted ``scales [K]`` and ``shifts [K]`` (float32, samples' device) and the steps taken."""

    scales: torch.Tensor
    shifts: torch.Tensor
    iterations: int


def solve_adam(samples: FitSamples, stop: EarlyStop) -> AdamSolution:
    """Run Adam on the objective of ``samples`` until ``stop`` says so."""
    device = samples.values.device
    scales = torch.ones(samples.num_snippets, dtype=torch.float32, device=device, requires_grad=True)
    shifts = torch.zeros(samples.num_snippets, dtype=torch.float32, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([scales, shifts], lr=LEARNING_RATE, betas=BETAS)
    previous = None
    calm_steps = 0
    iterations = 0
    for step in range(stop.max_iter):
        optimizer.zero_grad(set_to_none=True)
        loss = objective_terms(samples, scales, shifts).total
        loss.backward()
        optimizer.step()
        iterations = step + 1
        value = float(loss.detach())
        calm_steps = calm_steps + 1 if previous is not None and abs(value - previous) < stop.threshold else 0
        previous = value
        if iterations >= stop.min_iter and calm_steps >= stop.patience:
            break
    return AdamSolution(scales.detach(), shifts.detach(), iterations)
