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


def solve_adam(samples: FitSamples, stop: EarlyStop, read_every: int | None = None) -> AdamSolution:
    """Run Adam on the objective of ``samples`` until ``stop`` says so.

    read_every: steps between reads of the loss (each read waits for the device); None = every step
    on the CPU (free there), every 16 on a GPU. The early stop sees every step's loss either way,
    and the parameters of the step it stops at are returned (kept on the device until then), so
    the result does not depend on ``read_every``.
    """
    device = samples.values.device
    read_every = read_every or (1 if device.type == "cpu" else 16)
    scales = torch.ones(samples.num_snippets, dtype=torch.float32, device=device, requires_grad=True)
    shifts = torch.zeros(samples.num_snippets, dtype=torch.float32, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([scales, shifts], lr=LEARNING_RATE, betas=BETAS)
    previous = None
    calm_steps = 0
    iterations = 0
    losses: list[torch.Tensor] = []
    snapshots: list[tuple[torch.Tensor, torch.Tensor]] = []
    for step in range(stop.max_iter):
        optimizer.zero_grad(set_to_none=True)
        loss = objective_terms(samples, scales, shifts).total
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())
        if read_every > 1:
            snapshots.append((scales.detach().clone(), shifts.detach().clone()))
        if len(losses) < read_every and step + 1 < stop.max_iter:
            continue
        values = torch.stack(losses).tolist()
        first = step + 1 - len(values)
        for j, value in enumerate(values):
            iterations = first + j + 1
            calm_steps = calm_steps + 1 if previous is not None and abs(value - previous) < stop.threshold else 0
            previous = value
            if iterations >= stop.min_iter and calm_steps >= stop.patience:
                if snapshots:
                    return AdamSolution(*snapshots[j], iterations)
                return AdamSolution(scales.detach(), shifts.detach(), iterations)
        losses, snapshots = [], []
    return AdamSolution(scales.detach(), shifts.detach(), iterations)
