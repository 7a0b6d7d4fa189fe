"""Colour maps and 8/16-bit encodings of depth (io_adapters/encodings.py)."""

import numpy as np
import pytest

from io_adapters.encodings import (
    apply_colormap,
    colormap_lut,
    pack16_bgra,
    to_uint8,
    to_uint16,
    unpack16_bgra,
)
from pipeline.errors import BadInputError


def test_lut_matches_matplotlib_endpoints():
    import matplotlib

    lut = colormap_lut("Greys_r")
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert lut[0].tolist() == [0, 0, 0] and lut[255].tolist() == [255, 255, 255]
    turbo = colormap_lut("turbo")
    expected = np.round(np.asarray(matplotlib.colormaps["turbo"](0.5)[:3]) * 255)
    assert np.abs(turbo[128].astype(int) - expected).max() <= 3


def test_unknown_colormap_names_valid_ones():
    with pytest.raises(BadInputError, match="Spectral_r"):
        colormap_lut("no_such_map")


def test_apply_colormap_shapes_and_clipping():
    depth = np.array([[[-1.0, 0.0], [1.0, 2.0]]] * 3, dtype=np.float32)  # [3, 2, 2]
    out = apply_colormap(depth, "Greys_r")
    assert out.shape == (3, 2, 2, 3) and out.dtype == np.uint8
    assert out[0, 0, 0].tolist() == [0, 0, 0] and out[0, 1, 1].tolist() == [255, 255, 255]


def test_integer_encodings_round_and_clip():
    depth = np.array([-0.5, 0.0, 0.5, 1.0, 7.0, np.nan], dtype=np.float32)
    assert to_uint8(depth).tolist() == [0, 0, 128, 255, 255, 0]
    assert to_uint16(depth).tolist() == [0, 0, 32768, 65535, 65535, 0]
    assert to_uint16(np.float32(1 / 65535)) == 1


def test_pack16_roundtrip_is_exact_for_every_value():
    values = np.arange(65536, dtype=np.float64).reshape(256, 256) / 65535.0
    packed = pack16_bgra(values)
    assert packed.shape == (256, 256, 4) and packed.dtype == np.uint8
    assert (packed[..., 3] == 255).all() and (packed[..., 0] == 0).all()
    # Documented layout: R (index 2) = high byte, G (index 1) = low byte.
    assert packed[0, 0x12, 2] == 0 and packed[1, 0x34, 2] == 1 and packed[1, 0x34, 1] == 0x34
    assert np.array_equal(unpack16_bgra(packed), np.arange(65536, dtype=np.uint16).reshape(256, 256))


def test_unpack16_rejects_wrong_input():
    with pytest.raises(BadInputError):
        unpack16_bgra(np.zeros((4, 4, 3), np.uint8))


def test_bgra_colormap_matches_rgb_colormap():
    from io_adapters.encodings import apply_colormap_bgra

    depth = np.random.default_rng(0).random((2, 5, 7)).astype(np.float32)
    bgra = apply_colormap_bgra(depth, "turbo")
    assert bgra.shape == (2, 5, 7, 4) and bgra.dtype == np.uint8 and (bgra[..., 3] == 255).all()
    assert np.array_equal(bgra[..., 2::-1], apply_colormap(depth, "turbo"))
    assert np.array_equal(apply_colormap(depth, "turbo")[0, 0, 0], colormap_lut("turbo")[to_uint8(depth[0, 0, 0])])
