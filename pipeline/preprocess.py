"""RGB frames to model input (docs/method.md, section 1).

Frames are resized so that the longer edge equals ``res`` (aspect kept, antialiased), then both
edges are rounded to a multiple of 8 so the VAE's latent grid covers the image exactly (the
reference accepts other sizes; we round and say so in the README), and scaled to [-1, 1].
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads where frames are resized, not where --res is checked (usage errors at once)
    import torch

from pipeline.errors import BadInputError

RESAMPLE_METHODS = ("bilinear", "bicubic", "nearest", "nearest-exact", "area")
#: The reference's spellings (torchvision InterpolationMode names its tensor resize supports) are
#: ours in upper case with "_": BILINEAR, BICUBIC, NEAREST, NEAREST_EXACT.


def resample_mode(method: str) -> str:
    """Our name of a resampling method, given in any case and with ``_`` or ``-`` (``NEAREST_EXACT``
    -> ``nearest-exact``); ``BadInputError`` listing the accepted names otherwise."""
    mode = str(method).strip().lower().replace("_", "-")
    if mode not in RESAMPLE_METHODS:
        raise BadInputError(
            f"--resample-method {method}: use one of {', '.join(RESAMPLE_METHODS)} "
            f"(any case, _ or -: the reference's BILINEAR, BICUBIC, NEAREST, NEAREST_EXACT work too)"
        )
    return mode


# Largest processing size (longer edge). The reference's largest preset uses 1024; 4096 already
# needs tens of GB for the VAE, and a typo such as 100000 would try to allocate hundreds.
MAX_RES = 4096
# Smallest longer edge the models take. Group norm needs more than one value per group: a
# 1-frame snippet at 16 px (a 2x2 latent, 1x1 after the UNet's downsampling) fails in the tiny
# test model, whose first level has one channel per group; 32 px (4 latent pixels) keeps two
# values at the deepest level of the tiny UNet, and the real model (4+ channels per group) takes
# any size. Smaller --res is refused; smaller native inputs are upscaled to it.
MIN_RES = 32


def check_res(res: int) -> None:
    """--res is 0 (native size) or ``MIN_RES`` to ``MAX_RES`` pixels."""
    if res < 0 or 0 < res < MIN_RES or res > MAX_RES:
        raise BadInputError(f"--res {res}: must be 0 (native size) or a number of pixels from {MIN_RES} "
                            f"(the smallest size the model takes) to {MAX_RES}")


def describe_sizes(name: str, size: tuple[int, int], processed: tuple[int, int]) -> str:
    """One line for the user: "clip.mp4: 320x240 in, processed at 768x576 (upscaled: ...)".

    size, processed: (height, width) of the input and of the model's input.
    """
    (height, width), (out_h, out_w) = size, processed
    text = f"{name}: {width}x{height} in, processed at {out_w}x{out_h}"
    if out_h * out_w > height * width:
        text += " (upscaled: --res is above the input's size; --res 0 keeps it)"
    return text


def processing_size(height: int, width: int, res: int, multiple: int = 8) -> tuple[int, int]:
    """(H', W') after resizing the longer edge to ``res`` (0 = native) and rounding to ``multiple``.

    ``res`` was checked once where the settings were made (``check_res``); it is trusted here. A
    native size whose longer edge is below ``MIN_RES`` is upscaled to it (the model takes no less).
    """
    if res == 0 and max(height, width) < MIN_RES:
        res = MIN_RES
    if res == 0:
        new_h, new_w = height, width
    else:
        scale = res / max(height, width)
        new_h, new_w = height * scale, width * scale
    return max(multiple, int(round(new_h / multiple)) * multiple), max(multiple, int(round(new_w / multiple)) * multiple)


def resize(images: torch.Tensor, size: tuple[int, int], method: str = "bilinear") -> torch.Tensor:
    """Resize [N, C, H, W] float images to ``size``; antialiased when shrinking with (bi)linear/cubic.

    ``method``: any spelling ``resample_mode`` accepts (``bilinear``, ``BILINEAR``, ``nearest_exact``...).
    """
    method = resample_mode(method)
    if tuple(images.shape[-2:]) == tuple(size):
        return images
    kwargs = {}
    if method in ("bilinear", "bicubic"):
        kwargs = {"align_corners": False, "antialias": True}
    import torch.nn.functional as F

    return F.interpolate(images, size=size, mode=method, **kwargs)


def prepare_frames(frames: np.ndarray, res: int, method: str = "bilinear") -> torch.Tensor:
    """uint8 [N, H, W, 3] RGB -> float32 [N, 3, H', W'] in [-1, 1] at the processing size."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames [N, H, W, 3], got {frames.dtype} {tuple(frames.shape)}")
    import torch

    size = processing_size(frames.shape[1], frames.shape[2], res)
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
    images = resize(images, size, method).clamp_(0, 255)
    return images / 255.0 * 2.0 - 1.0
