"""Fake of syphon.utils.numpy (same shape checks as the real one)."""

import numpy as np


def copy_image_to_mtl_texture(image, texture) -> None:
    assert image.ndim == 3 and image.shape[2] == 4, "Image has to be of shape (m, n, 4)"
    assert image.dtype == np.uint8
    texture.pixels[:] = image


def copy_mtl_texture_to_image(texture, out=None):
    return texture.pixels.copy()
