"""Outputs of the tiny random test model cannot pass for depth: colour pictures carry a burnt-in
"RANDOM TEST MODEL - NOT DEPTH" mark, raw data (npy, 16-bit) stays exact and the run says so."""

from __future__ import annotations

import av
import numpy as np

from io_adapters.encodings import RANDOM_MODEL_MARK, _mark_mask, burn_mark, to_uint16
from io_adapters.video_file import read_gray16_video
from tests.conftest import run_rdstream, write_clip


def band_rows(height: int, width: int) -> int:
    return _mark_mask(RANDOM_MODEL_MARK, height, width).shape[0]


def looks_marked(picture: np.ndarray) -> bool:
    """A black band with white text on top (no colour map has black), the rest untouched."""
    band = picture[: band_rows(*picture.shape[:2])].max(axis=-1)
    return (band < 50).mean() > 0.5 and (band > 200).mean() > 0.05


def first_frame(path) -> np.ndarray:
    with av.open(str(path)) as container:
        return next(container.decode(video=0)).to_ndarray(format="rgb24")


def test_burn_mark_writes_white_text_on_a_black_band_and_leaves_the_rest():
    for channels in (3, 4):  # RGB and BGRA (alpha kept)
        picture = np.full((90, 160, channels), 128, np.uint8)
        burn_mark(picture)
        rows = band_rows(90, 160)
        assert 8 <= rows < 45 and looks_marked(picture[..., :3])
        assert (picture[rows:] == 128).all()
        if channels == 4:
            assert (picture[..., 3] == 128).all()
    for height, width in ((8, 8), (40, 64), (2160, 3840)):  # any size gets a mark that fits
        picture = np.zeros((height, width, 3), np.uint8)
        assert burn_mark(picture).shape == (height, width, 3) and picture.max() == 255


def test_rdstream_run_marks_colour_outputs_of_the_random_model_and_keeps_raw_data_exact(tmp_path, tiny_checkpoint):
    mp4, mkv, npy = tmp_path / "d.mp4", tmp_path / "d.mkv", tmp_path / "d.npy"
    result = run_rdstream("run", "--source", "test:?frames=4&size=160x96", "--sink", f"file:{mp4}", "--sink",
                          f"file:{mkv}", "--sink", f"npy:{npy}", "-c", str(tiny_checkpoint), "--res", "160",
                          "--no-status")
    assert result.returncode == 0, result.stderr
    assert f"Colour outputs carry a '{RANDOM_MODEL_MARK}' mark" in result.stderr
    assert looks_marked(first_frame(mp4))
    depth = np.load(npy)
    assert np.array_equal(read_gray16_video(mkv), to_uint16(depth))  # 16-bit data: exact, unmarked


def test_rdstream_file_marks_its_colour_videos(tmp_path, tiny_checkpoint):
    clip = write_clip(tmp_path / "clip.mkv", num_frames=3, width=160, height=96)
    result = run_rdstream("file", str(clip), "-o", str(tmp_path / "out"), "-c", str(tiny_checkpoint), "--res", "160",
                          "-d", "1")
    assert result.returncode == 0, result.stderr
    for name in ("clip_Spectral_r.mp4", "clip_Greys_r.mp4"):
        assert looks_marked(first_frame(tmp_path / "out" / name)), name
    side_by_side = first_frame(tmp_path / "out" / "clip_rgbd.mp4")
    colour, depth = np.split(side_by_side, 2, axis=1)
    assert looks_marked(depth) and not looks_marked(colour)  # the input frame stays as it came


def test_the_monitor_preview_of_the_random_model_carries_the_mark_too():
    import io

    from PIL import Image

    from stream.monitor.preview import encode_preview

    depth = np.full((216, 384), 0.5, dtype=np.float32)  # turbo at 0.5: green, no black anywhere

    def depth_half_top(mark):
        picture = np.asarray(Image.open(io.BytesIO(encode_preview(0, None, depth, "turbo", mark).jpeg)).convert("RGB"))
        return picture[:8, picture.shape[1] // 2:]

    assert depth_half_top(None).max(axis=-1).min() > 60
    assert (depth_half_top(RANDOM_MODEL_MARK).max(axis=-1) < 40).mean() > 0.3  # the black band of the mark
