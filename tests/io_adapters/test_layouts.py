"""RGB-D layouts: the pure compositing, the sinks that use it, and the check before the model loads."""

from __future__ import annotations

import anyio
import av
import numpy as np
import pytest

from io_adapters.frames import DepthFrame
from io_adapters.layouts import check_sink_layout, colour_as, colour_ycbcr, compose, compose_ycbcr, split
from io_adapters.ndi.formats import depth_to_p216, depth_to_uyvy, ycbcr_to_p216, ycbcr_to_uyvy
from io_adapters.registry import open_sink
from io_adapters.syphon_io import depth_to_syphon_bgra
from io_adapters.encodings import apply_colormap, pack16_bgra, to_uint8, to_uint16, unpack16_bgra
from pipeline.errors import BadInputError, RuntimeFailure


def _rgb(height=4, width=6, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_rgbd_puts_colour_left_and_rgbd_v_on_top_in_every_pixel_format():
    depth = np.linspace(0, 1, 24, dtype=np.float32).reshape(4, 6)
    rgb = _rgb()
    pictures = {"rgb": apply_colormap(depth, "turbo"), "bgra": pack16_bgra(depth), "grey16": to_uint16(depth)}
    for pixel, picture in pictures.items():
        assert compose(picture, rgb, "depth", pixel) is picture
        side = compose(picture, rgb, "rgbd", pixel)
        top = compose(picture, rgb, "rgbd-v", pixel)
        assert side.shape[:2] == (4, 12) and top.shape[:2] == (8, 6) and side.dtype == picture.dtype
        for composed, layout in ((side, "rgbd"), (top, "rgbd-v")):
            colour, depth_half = split(composed, layout)
            assert np.array_equal(depth_half, picture) and np.array_equal(colour, colour_as(rgb, pixel))
    assert np.array_equal(colour_as(rgb, "bgra")[..., 2::-1], rgb)
    assert (colour_as(rgb, "bgra")[..., 3] == 255).all()
    # 16-bit grey carries the Rec. 709 luma, full range.
    white_red = np.array([[[255, 255, 255], [255, 0, 0]]], np.uint8)
    assert colour_as(white_red, "grey16").tolist() == [[65535, round(0.2126 * 255 * 257)]]
    # packed16 stays decodable in the depth half.
    assert np.array_equal(unpack16_bgra(split(compose(pictures["bgra"], rgb, "rgbd", "bgra"), "rgbd")[1]),
                          to_uint16(depth))


def test_colour_of_another_size_is_scaled_to_the_depth_and_missing_colour_is_one_error():
    picture = np.zeros((4, 6), np.uint16)
    small = _rgb(2, 3)
    big = np.repeat(np.repeat(small, 2, axis=0), 2, axis=1)  # 4x6 from 2x3 blocks
    assert np.array_equal(compose(picture, small, "rgbd", "grey16")[:, :6], colour_as(big, "grey16"))
    with pytest.raises(RuntimeFailure, match="needs the colour frame"):
        compose(picture, None, "rgbd", "grey16")


def test_ycbcr_is_rec709_video_range():
    # black, white, red, green, blue -> standard Rec. 709 8-bit video-range values
    rgb = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    y, cb, cr = colour_ycbcr(rgb, 8)
    assert y.tolist() == [[16, 235, 63, 173, 32]]
    assert cb.tolist() == [[128, 128, 102, 42, 240]]
    assert cr.tolist() == [[128, 128, 240, 26, 118]]
    y16, cb16, _ = colour_ycbcr(rgb[:, :2], 16)
    assert y16.tolist() == [[4096, 60160]] and cb16.tolist() == [[32768, 32768]]


def test_4_2_2_formats_carry_colour_beside_grey_depth():
    depth = np.linspace(0, 1, 15, dtype=np.float32).reshape(3, 5)
    rgb = np.zeros((3, 5, 3), np.uint8)
    rgb[...] = (255, 0, 0)  # flat red: chroma survives the pairing exactly
    # depth layout: the same buffers as the grey-only encoders
    assert np.array_equal(ycbcr_to_uyvy(*compose_ycbcr(to_uint8(depth), None, "depth")), depth_to_uyvy(depth))
    assert np.array_equal(ycbcr_to_p216(*compose_ycbcr(to_uint16(depth), None, "depth")), depth_to_p216(depth))
    # rgbd-v keeps the odd width (5), the packing pads it to 6
    uyvy = ycbcr_to_uyvy(*compose_ycbcr(to_uint8(depth), rgb, "rgbd-v"))
    assert uyvy.shape == (6, 6, 2)
    assert (uyvy[:3, :, 1] == 63).all() and (uyvy[:3, 0::2, 0] == 102).all() and (uyvy[:3, 1::2, 0] == 240).all()
    assert np.array_equal(uyvy[3:, :5, 1], to_uint8(depth)) and (uyvy[3:, :, 0] == 128).all()
    p216 = ycbcr_to_p216(*compose_ycbcr(to_uint16(depth), rgb, "rgbd"))
    assert p216.shape == (6, 10)
    red_y, red_cb, red_cr = (int(plane[0, 0]) for plane in colour_ycbcr(rgb[:1, :1], 16))
    assert abs(red_y - 63 * 256) < 256 and abs(red_cb - 102 * 256) < 256 and abs(red_cr - 240 * 256) < 256
    assert np.array_equal(p216[:3, 5:], to_uint16(depth)) and (p216[:3, :5] == red_y).all()
    assert p216[3, 0] == red_cb and p216[3, 1] == red_cr and (p216[3:, 6:] == 32768).all()


def test_syphon_rgbd_keeps_the_colour_half_plain_and_the_depth_half_packed():
    depth = np.full((2, 3), 0.5, np.float32)
    rgb = _rgb(2, 3)
    bgra = depth_to_syphon_bgra(depth, "packed16", "Greys_r", rgb, "rgbd")
    assert bgra.shape == (2, 6, 4)
    assert np.array_equal(bgra[:, :3, 2::-1], rgb) and np.array_equal(unpack16_bgra(bgra[:, 3:]), to_uint16(depth))


@pytest.mark.parametrize("uri, message", [
    ("file:out.mp4?layout=sbs", "layout='sbs'.*expected one of depth, rgbd, rgbd-v"),
    ("npy:out.npy?layout=rgbd", "npy: sinks cannot carry layout=rgbd"),
    ("null:?layout=rgbd-v", "null: sinks cannot carry layout=rgbd-v"),
])
def test_unknown_or_uncarriable_layouts_are_refused_before_anything_opens(uri, message):
    with pytest.raises(BadInputError, match=message):
        check_sink_layout(uri)


def test_layout_depth_is_accepted_everywhere_and_is_the_default():
    assert check_sink_layout("ndi:Depth?format=p216&layout=RGBD") == "rgbd"
    assert check_sink_layout("npy:x.npy") == "depth" and check_sink_layout("syphon:D?layout=depth") == "depth"


def test_mkv_sink_writes_rgbd_with_exact_16_bit_grey_colour(tmp_path):
    path = tmp_path / "rgbd.mkv"
    depth = np.linspace(0, 1, 40 * 64, dtype=np.float32).reshape(40, 64)
    colours = [_rgb(40, 64, seed) for seed in range(3)]

    async def write():
        sink = open_sink(f"file:{path}?layout=rgbd", fps=30)
        assert sink.wants_colour
        for i, rgb in enumerate(colours):
            await sink.send(DepthFrame(index=i, timestamp=i / 30, depth=depth, rgb=rgb))
        await sink.close()

    anyio.run(write)
    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="gray16le") for f in container.decode(video=0)]
    assert len(frames) == 3
    for frame, rgb in zip(frames, colours):
        assert frame.shape == (40, 128)
        assert np.array_equal(frame[:, :64], colour_as(rgb, "grey16")) and np.array_equal(frame[:, 64:], to_uint16(depth))


def test_mp4_sink_follows_a_live_colour_map_from_the_frame(tmp_path):
    path = tmp_path / "live.mp4"
    depth = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (32, 1))

    async def write():
        sink = open_sink(f"file:{path}?cmap=Greys_r", fps=30)
        assert not sink.wants_colour
        await sink.send(DepthFrame(index=0, timestamp=0.0, depth=depth))
        await sink.send(DepthFrame(index=1, timestamp=1 / 30, depth=depth, cmap="turbo"))
        await sink.close()

    anyio.run(write)
    with av.open(str(path)) as container:
        first, second = [f.to_ndarray(format="rgb24").astype(int) for f in container.decode(video=0)]
    assert np.abs(first - apply_colormap(depth, "Greys_r")).mean() < 6
    assert np.abs(second - apply_colormap(depth, "turbo")).mean() < 6
