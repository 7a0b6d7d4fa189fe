"""Exact co-alignment: the L1 consensus of section 5's data terms by iteratively reweighted least squares.

Problem. Snippet k predicts ``a = s_k x + t_k`` for each fit pixel of each frame it covers. We seek
the ``(s, t)`` and per-frame targets ``T[n, p]`` minimising

    sum_n (1 / c_n) sum_(k covers n) sum_p |s_k x_k[n, p] + t_k - T[n, p]|,    c_n = mean_p |T[n, p]|,

the linear data term of docs/method.md, section 5 with the target free (the L1 consensus, a per-pixel median)
instead of the current mean. Each IRLS step replaces ``|r|`` by ``r^2 / max(|r_old|, delta)``
with ``delta = RESIDUAL_FLOOR * c_n`` (residuals below 1 % of the frame's magnitude are treated
quadratically, larger ones, outliers above all, as L1): a weighted least-squares problem. Its
targets have a closed form (the weighted mean of the covering predictions), and putting it back
leaves a quadratic form ``theta^T Q theta`` in the 2K unknowns ``theta = (s, t)``, assembled per
frame from weighted pixel moments (sparse: a snippet only couples with snippets sharing a frame).
A handful of such solves reach the consensus; outlier regions get small weights and stop pulling.

Gauge. The consensus only fixes ``(s, t)`` up to one global affine map per connected group of
snippets (``theta -> (alpha s, alpha t + beta)``; ``theta = 0`` would be a trivial zero). We fix it
explicitly with two linear constraints per group, mean scale = 1 and mean shift = 0, solved exactly
(one sparse symmetric solve per step, see ``_solve_gauged``). No penalty pulls single snippets
toward s=1, t=0 (the reference's ``10 t^2`` does, which keeps it from removing per-snippet shifts).
A constant snippet carries no scale information and would pull the snippets it overlaps toward
flat: it is left out of the fit, keeps scale 1 and is shifted to the mean consensus of its frames
(the merge still averages it in). After the solve, the global shift is moved once more (one shift
for all snippets, which the final normalisation removes anyway) to the value that minimises
section 5's shift penalty, so ``loss`` compares as fairly as it can with Adam's. The regulariser
still dominates that loss whenever the snippets' true shifts differ: Adam trades consistency for
small shifts.

Inverse depth. The data are inverse depth; section 5 adds the same consensus measured on
``1 / clamp(a, 1e-3)`` (i.e. on depth). That term is not a separate fit here: near the consensus
``|1/a - 1/T| ~ |a - T| / (a T)``, so it only re-weights the same residuals, strongly toward the
farthest pixels (smallest a, down to the 1e-3 clamp on min-subtracted data). With the linearised
term added to the IRLS weights (``1 / c_n + 1 / (c_inv_n a T)``) a handful of far pixels get most
of the say; measured on the synthetic bench clip it made AbsRel slightly worse (0.0117 vs 0.0114),
so the solver fits the linear consensus only. The inverse term is still part of the reported
``loss``, with the regulariser.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import scipy.sparse.linalg
import torch

from pipeline.coalign.objective import objective_terms
from pipeline.coalign.quality import IrlsSettings
from pipeline.coalign.snippet_set import FitSamples

#: IRLS smoothing: residuals below this fraction of the frame magnitude c_n count as this size,
#: which makes the fitted loss Huber-like (quadratic below 1 %, L1 above). Measured on the bench
#: clips: 1e-2 reaches in 4 solves the accuracy that 1e-3 (closer to pure L1) needs 16 for.
RESIDUAL_FLOOR = 1e-2
#: A snippet whose fit values span less than this (relative to the data range) is constant.
CONSTANT_SPAN = 1e-6


@dataclass(frozen=True)
class ExactSolution:
    """Fitted ``scales [K]``, ``shifts [K]`` (float32, CPU) and the number of least-squares solves."""

    scales: torch.Tensor
    shifts: torch.Tensor
    solves: int


@dataclass(frozen=True)
class _FrameLayout:
    """Entries arranged per frame: ``values [N, S, P]`` (0 where missing), ``mask [N, S]``,
    ``snippet [N, S]`` (0 where missing)."""

    values: torch.Tensor
    mask: torch.Tensor
    snippet: torch.Tensor


def _frame_layout(samples: FitSamples) -> _FrameLayout:
    frame_of = samples.frame_of_entry.cpu()
    order = torch.argsort(frame_of, stable=True)
    counts = samples.entries_per_frame.cpu()
    starts = torch.cumsum(counts, 0) - counts
    slot = torch.arange(order.numel()) - starts[frame_of[order]]
    n, s = samples.num_frames, int(counts.max())  # the most snippets covering one frame
    values = torch.zeros(n, s, samples.pixels, dtype=torch.float32)
    mask = torch.zeros(n, s, dtype=torch.float32)
    snippet = torch.zeros(n, s, dtype=torch.int64)
    rows = frame_of[order]
    values[rows, slot] = samples.values.cpu()[order]
    mask[rows, slot] = 1.0
    snippet[rows, slot] = samples.snippet_of_entry.cpu()[order]
    return _FrameLayout(values, mask, snippet)


def _components(samples: FitSamples, informative: np.ndarray) -> np.ndarray:
    """Connected group of each snippet, int ``[K]``: informative snippets sharing a frame are
    connected; an uninformative (constant) snippet is a group of its own."""
    k = samples.num_snippets
    snippet_of = samples.snippet_of_entry.cpu().numpy()
    keep = informative[snippet_of]
    entries = scipy.sparse.coo_matrix(
        (np.ones(int(keep.sum())), (snippet_of[keep], samples.frame_of_entry.cpu().numpy()[keep])),
        shape=(k, samples.num_frames),
    ).tocsr()
    _, labels = scipy.sparse.csgraph.connected_components(entries @ entries.T, directed=False)
    return labels


def _constant_snippets(samples: FitSamples) -> np.ndarray:
    """Bool ``[K]``: snippets whose fit values are (numerically) constant."""
    k = samples.num_snippets
    values = samples.values.cpu()
    idx = samples.snippet_of_entry.cpu()
    high = torch.full((k,), -torch.inf).scatter_reduce(0, idx, values.amax(1), "amax")
    low = torch.full((k,), torch.inf).scatter_reduce(0, idx, values.amin(1), "amin")
    span = float(values.max() - values.min()) or 1.0
    return ((high - low) <= CONSTANT_SPAN * span).numpy()


def _local_forms(layout: _FrameLayout, weights: torch.Tensor) -> np.ndarray:
    """Per-frame pieces of ``Q``: float64 ``[N, 2S, 2S]`` over the frame's (scales, shifts), with
    ``theta^T Q theta = sum w (a - T_w)^2`` once scattered (T_w the weighted per-pixel mean).

    ``weights [N, S, P]`` (0 for missing entries).
    """
    x = layout.values
    total = weights.sum(1, keepdim=True).clamp_min(1e-30)  # [N, 1, P]
    wx = weights * x
    d_xx, d_x, d_1 = (wx * x).sum(-1), wx.sum(-1), weights.sum(-1)  # [N, S]
    share_x, share_1 = wx / total, weights / total
    m_xx = torch.einsum("nsp,ntp->nst", wx, share_x)
    m_x1 = torch.einsum("nsp,ntp->nst", wx, share_1)
    m_11 = torch.einsum("nsp,ntp->nst", weights, share_1)
    ss = torch.diag_embed(d_xx) - m_xx
    st = torch.diag_embed(d_x) - m_x1
    tt = torch.diag_embed(d_1) - m_11
    return torch.cat([torch.cat([ss, st], 2), torch.cat([st.transpose(1, 2), tt], 2)], 1).double().numpy()


@dataclass(frozen=True)
class _ReducedPattern:
    """Where each per-frame piece lands in the reduced (free unknowns only) sparse ``Q``, in CSC
    layout; built once, since only the values change between IRLS steps."""

    keep: np.ndarray  # bool [N * 2S * 2S]: both unknowns of the piece are free
    target: np.ndarray  # int [kept]: position in the CSC data array
    indices: np.ndarray
    indptr: np.ndarray
    size: int


def _reduced_pattern(layout: _FrameLayout, num_snippets: int, free: np.ndarray) -> _ReducedPattern:
    index = torch.cat([layout.snippet, layout.snippet + num_snippets], 1).numpy()  # [N, 2S]
    position = np.full(2 * num_snippets, -1, dtype=np.int64)
    position[free] = np.arange(free.size)
    rows = np.broadcast_to(position[index][:, :, None], index.shape + index.shape[1:]).ravel()
    cols = np.broadcast_to(position[index][:, None, :], index.shape + index.shape[1:]).ravel()
    keep = (rows >= 0) & (cols >= 0)
    keys, target = np.unique(cols[keep] * free.size + rows[keep], return_inverse=True)
    indptr = np.concatenate([[0], np.cumsum(np.bincount(keys // free.size, minlength=free.size))])
    return _ReducedPattern(keep, target, keys % free.size, indptr, free.size)


def _reduced_matrix(local: np.ndarray, pattern: _ReducedPattern) -> scipy.sparse.csc_matrix:
    data = np.bincount(pattern.target, weights=local.ravel()[pattern.keep], minlength=pattern.indices.size)
    return scipy.sparse.csc_matrix((data, pattern.indices, pattern.indptr), shape=(pattern.size, pattern.size))


@dataclass(frozen=True)
class _Gauge:
    """Which unknowns the solve keeps: all scales and shifts of informative snippets except one
    shift per group (held at 0: adding one constant to a whole group changes nothing).
    ``free [n]`` indexes theta; ``groups [K]`` labels snippets; ``constant [K]`` marks held snippets."""

    free: np.ndarray
    groups: np.ndarray
    constant: np.ndarray


def _gauge(groups: np.ndarray, constant: np.ndarray) -> _Gauge:
    k = groups.size
    _, first_of_group = np.unique(groups, return_index=True)
    held_shift = np.zeros(k, dtype=bool)
    held_shift[first_of_group] = True
    free = np.concatenate([np.flatnonzero(~constant), k + np.flatnonzero(~constant & ~held_shift)])
    return _Gauge(free, groups, constant)


class _SequenceSolver:
    """Solves the slowly changing SPD systems of successive IRLS steps.

    A sparse LU factorisation is the main cost of a step. Successive steps' matrices differ only by
    their weights, so a step may reuse the last factorisation as the preconditioner of a conjugate
    gradient solve started from the last solution (a few cheap iterations); when that takes more
    than ``REFACTOR_AFTER`` iterations, the next step factorises afresh. Solutions match a direct
    solve to ``CG_TOLERANCE`` (relative residual).
    """

    REFACTOR_AFTER = 20
    CG_TOLERANCE = 1e-9

    def __init__(self) -> None:
        self._factor = None
        self._last: np.ndarray | None = None
        self._refactor = True

    def solve(self, matrix: scipy.sparse.csc_matrix, rhs: np.ndarray, refactor: bool = False) -> np.ndarray:
        """Solve ``matrix x = rhs``; ``refactor`` forces a fresh factorisation (use it when the
        weights changed wholesale, e.g. from plain to robust least squares)."""
        if not (refactor or self._refactor) and self._factor is not None:
            steps = [0]
            preconditioner = scipy.sparse.linalg.LinearOperator(matrix.shape, matvec=self._factor.solve)
            solution, info = scipy.sparse.linalg.cg(
                matrix, rhs, x0=self._last, rtol=self.CG_TOLERANCE, maxiter=4 * self.REFACTOR_AFTER,
                M=preconditioner, callback=lambda _: steps.__setitem__(0, steps[0] + 1),
            )
            if info == 0:
                self._refactor = steps[0] > self.REFACTOR_AFTER
                self._last = solution
                return solution
        try:
            self._factor = scipy.sparse.linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A")
            solution = self._factor.solve(rhs)
        except RuntimeError:  # singular: a snippet whose pixels cannot fix its scale; least norm then
            self._factor = None
            solution = scipy.sparse.linalg.lsqr(matrix, rhs)[0]
        self._refactor = False
        self._last = solution
        return solution


def _solve_gauged(reduced: scipy.sparse.csc_matrix, gauge: _Gauge, solver: _SequenceSolver, refactor: bool) -> np.ndarray:
    """Minimise ``theta^T Q theta`` with mean scale 1 and mean shift 0 in each group.

    ``reduced`` is Q on the free unknowns ``gauge.free``. With one shift per group held, Q is
    positive definite on the remaining unknowns, and the Lagrange condition of the scale
    constraint says ``Q theta ~ e_s`` (ones on the scales): one sparse symmetric solve, then each
    group is rescaled to mean scale 1 and its shifts centred. Constant snippets keep scale 1 and
    shift 0.
    """
    k = gauge.groups.size
    theta = np.zeros(2 * k)
    theta[:k][gauge.constant] = 1.0
    free = gauge.free
    if free.size:
        theta[free] = solver.solve(reduced, (free < k).astype(np.float64), refactor)
    for group in np.unique(gauge.groups[~gauge.constant]):
        members = np.flatnonzero(gauge.groups == group)
        total = theta[members].sum()
        if total != 0:
            theta[members] *= members.size / total
            theta[members + k] *= members.size / total
        theta[members + k] -= theta[members + k].mean()
    return theta


def _consensus(layout: _FrameLayout, weights: torch.Tensor, scales: torch.Tensor, shifts: torch.Tensor):
    """Predictions ``a [N, S, P]`` and weighted targets ``T [N, P]``."""
    dtype = layout.values.dtype
    aligned = scales.to(dtype)[layout.snippet][..., None] * layout.values + shifts.to(dtype)[layout.snippet][..., None]
    target = (weights * aligned).sum(1) / weights.sum(1).clamp_min(1e-30)
    return aligned, target


def solve_exact(samples: FitSamples, settings: IrlsSettings) -> ExactSolution:
    """IRLS for the L1 consensus with an explicit gauge (module docstring). CPU; pixel moments in
    float32, the linear solves in float64."""
    k = samples.num_snippets
    layout = _frame_layout(samples)
    constant = _constant_snippets(samples)
    groups = _components(samples, ~constant)
    gauge = _gauge(groups, constant)
    pattern = _reduced_pattern(layout, k, gauge.free)
    solver = _SequenceSolver()
    # constant snippets take no part in the fit: they would pull the others flat
    informative = layout.mask * torch.from_numpy(~constant)[layout.snippet].float()
    mask = informative[..., None].expand_as(layout.values)
    scales = torch.ones(k, dtype=torch.float64)
    shifts = torch.zeros(k, dtype=torch.float64)
    weights = mask.clone()
    solves = 0
    for solves in range(1, settings.max_solves + 1):
        aligned, target = _consensus(layout, weights, scales, shifts)
        magnitude = target.abs().mean(1).clamp_min(1e-12)[:, None, None]  # c_n [N, 1, 1]
        if solves == 1:
            weights = mask / magnitude  # the first solve is plain (normalised) least squares
        else:
            residual = (aligned - target[:, None, :]).abs()
            weights = mask / magnitude / torch.maximum(residual, RESIDUAL_FLOOR * magnitude)
        theta = torch.from_numpy(_solve_gauged(_reduced_matrix(_local_forms(layout, weights), pattern), gauge, solver, refactor=solves <= 2))
        step = float((theta - torch.cat([scales, shifts])).abs().max())
        scales, shifts = theta[:k], theta[k:]
        if solves > 1 and step < settings.tolerance * float(scales.abs().mean()):
            break
    if constant.any():
        shifts = _place_constant_snippets(layout, weights, scales, shifts, constant)
    scales, shifts = _least_penalised_gauge(samples, scales, shifts)
    return ExactSolution(scales, shifts, solves)


def _place_constant_snippets(layout, weights, scales, shifts, constant: np.ndarray) -> torch.Tensor:
    """Shift each constant snippet (scale 1) to the mean consensus of the frames it covers; 0 where
    no informative snippet covers any of its frames."""
    _, target = _consensus(layout, weights, scales, shifts)
    covered = weights.sum(1).amax(1) > 0  # frames with a consensus [N]
    shifts = shifts.clone()
    for kk in np.flatnonzero(constant):
        slots = (layout.snippet == int(kk)) & (layout.mask > 0) & covered[:, None]  # [N, S]
        if bool(slots.any()):
            frames, slot = torch.nonzero(slots, as_tuple=True)
            shifts[kk] = (target[frames] - layout.values[frames, slot]).mean()
    return shifts


def _least_penalised_gauge(samples: FitSamples, scales: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move all shifts by the one global ``beta`` that minimises section 5's shift penalty.

    The consensus does not depend on it; the reference's ``10 * mean(t^2)`` per level does, and it
    is smallest when the levels' mean shifts average to 0. The global scale stays at mean scale 1
    (the reference's start, where its scale penalty is nearly 0): the section-5 objective cannot
    choose it, since shrinking every prediction below the inverse term's 1e-3 clamp would zero that
    term. The move is kept only if the full objective agrees that it is better.
    """
    level = samples.level_of_snippet.cpu()
    counts = torch.bincount(level, minlength=samples.num_levels).double()
    level_mean_shift = torch.zeros(samples.num_levels, dtype=torch.float64).index_add(0, level, shifts.double()) / counts
    candidate = scales.float(), (shifts - level_mean_shift.mean()).float()
    plain = scales.float(), shifts.float()
    device = samples.values.device
    with torch.no_grad():
        losses = [float(objective_terms(samples, a.to(device), b.to(device)).total) for a, b in (candidate, plain)]
    return candidate if losses[0] <= losses[1] else plain
