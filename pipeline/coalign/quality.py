"""Quality modes of the co-alignment: Adam early-stop tables (docs/method.md, section 5) and exact-solver settings.

Adam modes stop when ``|loss_i - loss_(i-1)| < threshold`` held for ``patience`` consecutive steps,
checked only once ``min_iter`` steps ran, and always at ``max_iter``. The seed fork has one table for
MPS and one for CUDA; ``device_type="cpu"`` (and ``"mps"``) use the MPS table, ``"cuda"`` the CUDA one.
The extra mode ``"reference"`` is the reference optimiser itself: 2000 steps, no early stop.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import BadInputError

QUALITIES = ("fast", "balanced", "quality")
DEVICE_TYPES = ("cpu", "mps", "cuda")


@dataclass(frozen=True)
class EarlyStop:
    """Adam stopping rule: ``patience`` calm steps (change < ``threshold``) after ``min_iter``; cap ``max_iter``."""

    patience: int
    min_iter: int
    threshold: float
    max_iter: int


_MPS_TABLE = {
    "fast": EarlyStop(patience=30, min_iter=500, threshold=1e-4, max_iter=700),
    "balanced": EarlyStop(patience=50, min_iter=800, threshold=5e-5, max_iter=1200),
    "quality": EarlyStop(patience=200, min_iter=1500, threshold=1e-6, max_iter=2000),
}
_CUDA_TABLE = {
    "fast": EarlyStop(patience=50, min_iter=1000, threshold=1e-5, max_iter=1000),
    "balanced": EarlyStop(patience=100, min_iter=1200, threshold=1e-5, max_iter=1500),
    "quality": EarlyStop(patience=300, min_iter=1800, threshold=1e-7, max_iter=2000),
}
#: The reference optimiser: a fixed 2000 steps.
REFERENCE_STOP = EarlyStop(patience=0, min_iter=2000, threshold=0.0, max_iter=2000)


@dataclass(frozen=True)
class IrlsSettings:
    """Settings of an IRLS solver for one quality mode: the exact offline solver and the
    ``OnlineAligner``'s joint refinement have the same three knobs (different tables below).

    Attributes:
        stride: keep every n-th pixel (both axes) of the (cropped) frame for the fit; the
            reference's Adam uses 10.
        max_solves: most weighted least-squares solves (the first one is plain least squares);
            online, per emitted frame.
        tolerance: stop when no (open) scale or shift moves by more than this, relative to the
            mean (open) scale, between two solves.
    """

    stride: int
    max_solves: int
    tolerance: float


_EXACT_TABLE = {
    "fast": IrlsSettings(stride=10, max_solves=3, tolerance=1e-2),
    "balanced": IrlsSettings(stride=10, max_solves=5, tolerance=1e-3),
    "quality": IrlsSettings(stride=5, max_solves=10, tolerance=1e-4),
}


def check_quality(quality: str, allowed: tuple[str, ...] = QUALITIES) -> None:
    """The one check of a ``--quality`` value (every command and solver calls it)."""
    if quality not in allowed:
        raise BadInputError(f"--quality {quality}: use one of {', '.join(allowed)}")


def adam_early_stop(quality: str, device_type: str = "cpu") -> EarlyStop:
    """Early-stop rule of an Adam quality mode on ``device_type`` (cpu uses the MPS values)."""
    check_quality(quality, QUALITIES + ("reference",))
    if device_type not in DEVICE_TYPES:
        raise BadInputError(f"co-alignment: device_type {device_type!r} is not one of {', '.join(DEVICE_TYPES)}")
    if quality == "reference":
        return REFERENCE_STOP
    return (_CUDA_TABLE if device_type == "cuda" else _MPS_TABLE)[quality]


def exact_settings(quality: str) -> IrlsSettings:
    """Exact-solver settings of a quality mode (the same on every device)."""
    check_quality(quality, QUALITIES)
    return _EXACT_TABLE[quality]


_ONLINE_TABLE = {
    "fast": IrlsSettings(stride=10, max_solves=4, tolerance=1e-3),
    "balanced": IrlsSettings(stride=10, max_solves=8, tolerance=3e-4),
    "quality": IrlsSettings(stride=5, max_solves=16, tolerance=1e-4),
}


def online_settings(quality: str) -> IrlsSettings:
    """``OnlineAligner`` settings of a quality mode."""
    check_quality(quality, QUALITIES)
    return _ONLINE_TABLE[quality]
