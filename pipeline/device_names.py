"""``--device`` names, read without torch, so a typo is answered before the model (and torch) loads.

Accepted: ``auto`` (Apple's MPS, then CUDA, then the CPU), ``cpu``, ``mps``, ``cuda`` (the first
GPU torch sees) and ``cuda:N`` (GPU number N, counted from 0 as ``nvidia-smi`` lists them unless
CUDA_VISIBLE_DEVICES says otherwise). Whether that device exists here is checked with torch, in
``pipeline.checkpoint.resolve_device``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import BadInputError

DEVICE_CHOICES = "auto, cpu, mps, cuda or cuda:N (N = 0, 1, ...: one GPU of several)"
#: The --device help text of every command.
DEVICE_HELP = "auto | cpu | mps | cuda | cuda:N (one GPU of several, as nvidia-smi numbers them)"


@dataclass(frozen=True)
class DeviceName:
    """A parsed ``--device``: ``kind`` is auto, cpu, mps or cuda; ``index`` the GPU number of
    ``cuda:N`` (None: not given)."""

    kind: str
    index: int | None = None


def parse_device_name(name: str | None) -> DeviceName:
    """``--device`` text -> DeviceName; None or "" mean ``auto``. Case and spaces around are ignored.

    Raises:
        BadInputError: an unknown device, or an index that is not a whole number >= 0 or that
            is given to a device without GPU numbers (``cpu:1``, ``mps:1``).
    """
    text = (name or "auto").strip().lower()
    kind, colon, index_text = text.partition(":")
    if kind not in ("auto", "cpu", "mps", "cuda"):
        raise BadInputError(f"--device {name}: unknown device; use {DEVICE_CHOICES}")
    if not colon:
        return DeviceName(kind)
    if kind != "cuda":
        raise BadInputError(f"--device {name}: only cuda takes a GPU number (cuda:0, cuda:1, ...); use {kind}")
    if not index_text.isdigit():
        raise BadInputError(f"--device {name}: the GPU number after 'cuda:' must be 0, 1, 2, ...")
    return DeviceName(kind, int(index_text))
