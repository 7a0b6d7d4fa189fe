"""Joint IRLS refinement of a few open snippets against fixed (frozen) predictions, for the online aligner.

The frames touched by the open snippets are laid out as ``[F, S, P]``: F frames, up to S entries per
frame, P fit pixels. An entry is either *free* (snippet j's values x: prediction ``s_j x + t_j``) or
*fixed* (a prediction that does not move: a frozen or pinned snippet). The L1 consensus
``sum_f (1 / c_f) sum_entries sum_p |a - T[f, p]|`` is minimised over the free ``(s_j, t_j)`` by
IRLS, with the targets T eliminated in closed form each step (as in ``pipeline.coalign.exact``). The
fixed entries fix the shift gauge. The sum of the free scales is held at its starting value: frames
seen only by free snippets would otherwise reward shrinking them all (a smaller scale means smaller
noise residuals), and that bias, repeated every frame, makes the stream's scale drift. The overall
scale of new snippets therefore comes from their warm start against fixed estimates; the refinement
redistributes scale between them and fits their shifts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Residuals below this fraction of the frame magnitude c_f count as this size.
RESIDUAL_FLOOR = 1e-3
#: Relative ridge that keeps the system solvable when a free snippet meets no other entry.
RIDGE = 1e-9


@dataclass
class RefineProblem:
    """Inputs of ``refine``.

    Attributes:
        values: float64 ``[F, S, P]``: x of free entries, the fixed prediction of fixed entries, 0 where missing.
        mask: float64 ``[F, S]``, 1 for present entries.
        free: int64 ``[F, S]``, index j of the free snippet of each entry, -1 for fixed or missing.
        scales, shifts: float64 ``[J]``, the starting values of the free snippets.
    """

    values: np.ndarray
    mask: np.ndarray
    free: np.ndarray
    scales: np.ndarray
    shifts: np.ndarray


def _predictions(problem: RefineProblem, theta: np.ndarray) -> np.ndarray:
    j = problem.scales.size
    is_free = problem.free >= 0
    index = np.where(is_free, problem.free, 0)
    gain = np.where(is_free, theta[index], 1.0)
    offset = np.where(is_free, theta[j + index], 0.0)
    return problem.values * gain[..., None] + offset[..., None]


def refine_open_snippets(problem: RefineProblem, max_solves: int, tolerance: float) -> tuple[np.ndarray, np.ndarray, int]:
    """IRLS refinement (module docstring): returns ``(scales [J], shifts [J], solves)``."""
    j = problem.scales.size
    theta = np.concatenate([problem.scales, problem.shifts]).astype(np.float64)
    scale_sum = float(problem.scales.sum())
    mask = problem.mask[..., None]
    is_free = (problem.free >= 0).astype(np.float64)
    x_coef = problem.values  # coefficient of the entry's scale variable (or of the constant 1)
    t_coef = is_free  # coefficient of the entry's shift variable (0 for fixed entries)
    # variable of each entry's two coefficients; fixed entries use the constant slot 2J (= 1)
    var_x = np.where(problem.free >= 0, problem.free, 2 * j)
    var_t = np.where(problem.free >= 0, problem.free + j, 2 * j)
    size = 2 * j + 1
    weights = np.broadcast_to(mask, x_coef.shape)
    solves = 0
    for solves in range(1, max_solves + 1):
        aligned = _predictions(problem, theta)
        total = weights.sum(1).clip(min=1e-300)
        target = (weights * aligned).sum(1) / total  # [F, P]
        magnitude = np.abs(target).mean(1).clip(min=1e-12)[:, None, None]
        residual = np.abs(aligned - target[:, None, :])
        weights = mask / magnitude / np.maximum(residual, RESIDUAL_FLOOR * magnitude)
        total = weights.sum(1, keepdims=True)  # [F, 1, P]
        wx = weights * x_coef
        wt = weights * t_coef[..., None]
        share_x = np.swapaxes(wx / total, 1, 2)
        share_t = np.swapaxes(wt / total, 1, 2)
        xx = np.einsum("fsp,fsp->fs", wx, x_coef)
        xt = wx.sum(-1) * t_coef
        tt = weights.sum(-1) * t_coef
        block_xx = _diag(xx) - wx @ share_x
        block_xt = _diag(xt) - wx @ share_t
        block_tt = _diag(tt) - wt @ share_t
        local = np.concatenate(
            [np.concatenate([block_xx, block_xt], 2), np.concatenate([np.swapaxes(block_xt, 1, 2), block_tt], 2)], 1
        )
        index = np.concatenate([var_x, var_t], 1)  # [F, 2S]
        flat = (index[:, :, None] * size + index[:, None, :]).ravel()
        q = np.bincount(flat, weights=local.ravel(), minlength=size * size).reshape(size, size)
        system = q[: 2 * j, : 2 * j]
        ridge = RIDGE * max(float(np.trace(system)) / (2 * j), 1e-300)
        kkt = np.zeros((2 * j + 1, 2 * j + 1))
        kkt[: 2 * j, : 2 * j] = system + ridge * np.eye(2 * j)
        kkt[2 * j, :j] = kkt[:j, 2 * j] = 1.0
        rhs = np.concatenate([-q[: 2 * j, 2 * j] + ridge * theta, [scale_sum]])
        new_theta = np.linalg.solve(kkt, rhs)[: 2 * j]
        step = float(np.abs(new_theta - theta).max())
        theta = new_theta
        if step < tolerance * max(float(np.abs(theta[:j]).mean()), 1e-12):
            break
    return theta[:j], theta[j:], solves


def _diag(values: np.ndarray) -> np.ndarray:
    """``[F, S]`` -> ``[F, S, S]`` diagonal matrices."""
    out = np.zeros(values.shape + values.shape[-1:], dtype=values.dtype)
    idx = np.arange(values.shape[-1])
    out[:, idx, idx] = values
    return out
