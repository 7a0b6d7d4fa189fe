"""Outputs of the tiny random test model cannot pass for depth: colour pictures carry a burnt-in
"RANDOM TEST MODEL - NOT DEPTH" mark, raw data (npy, 16-bit) stays exact and the run says so."""

from __future__ import annotations

import av
import numpy as np

from io_adapters.encodings import RANDOM_MARK_NOTE, RANDOM_MODEL_MARK, _mark_mask, burn_mark, to_uint16
from io_adapters.video_file import read_gray16_video
from tests.conftest import ROOT, run_rdstream, write_clip
from tests.support.texture_fakes import fake_spout, fake_syphon  # noqa: F401  (fixtures: the fakes of SpoutGL and syphon-python)


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
    assert RANDOM_MARK_NOTE in " ".join(result.stderr.split())
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


def _what_a_receiver_gets(output, mark, folder, fake_syphon, fake_spout) -> np.ndarray:
    """The picture (or raw values) one sink format delivers for a grey ramp, with or without ``mark``."""
    import types

    import anyio

    from io_adapters.frames import DepthFrame
    from io_adapters.ndi.sender import NdiSender
    from io_adapters.registry import open_sink

    depth = np.tile(np.linspace(0.2, 0.8, 160, dtype=np.float32), (96, 1))
    frame = DepthFrame(index=0, timestamp=0.0, depth=depth, mark=mark)
    if output.scheme == "ndi":  # the buffer the sender hands the SDK (grey bgra: no colour map given)
        sender = types.SimpleNamespace(fmt=output.fmt, cmap=None, layout="depth")
        return np.asarray(NdiSender.picture(sender, depth, None, None, mark)[0]).copy()
    name = f"{output.scheme}-{output.fmt.strip('.') or 'raw'}-{bool(mark)}"
    uri = {"file": f"file:{folder / name}{output.fmt}", "npy": f"npy:{folder / name}.npy",
           "syphon": f"syphon:{name}?format={output.fmt}", "spout": f"spout:{name}?format={output.fmt}"}[output.scheme]

    async def send_one():
        sink = open_sink(uri, fps=30.0)
        await sink.send(frame)
        while sink.sent < 1:
            await anyio.sleep(0.005)
        # what a receiver of the fake frameworks got, before close releases the sender
        published = {"syphon": lambda: sink.server.frames[0],
                     "spout": lambda: fake_spout.SENDERS[name].frames[0]}.get(output.scheme, lambda: None)()
        await sink.close()
        return published

    published = anyio.run(send_one)
    if published is not None:
        return published
    if output.scheme == "npy":
        return np.load(folder / f"{name}.npy")
    path = folder / f"{name}{output.fmt}"
    return read_gray16_video(path) if output.fmt == ".mkv" else first_frame(path)


def test_the_mark_statement_is_what_every_sink_format_does(tmp_path, fake_syphon, fake_spout):
    from io_adapters.encodings import MARKED_OUTPUTS
    from io_adapters.ndi.options import NDI_FORMATS
    from io_adapters.texture_options import TEXTURE_FORMATS  # Syphon's and Spout's, read once for both

    every_format = ({("ndi", f) for f in NDI_FORMATS} | {("syphon", f) for f in TEXTURE_FORMATS}
                    | {("spout", f) for f in TEXTURE_FORMATS} | {("file", ".mp4"), ("file", ".mkv"), ("npy", "")})
    assert {(o.scheme, o.fmt) for o in MARKED_OUTPUTS} == every_format  # the statement names every one
    for output in MARKED_OUTPUTS:
        plain = _what_a_receiver_gets(output, None, tmp_path, fake_syphon, fake_spout)
        marked = _what_a_receiver_gets(output, RANDOM_MODEL_MARK, tmp_path, fake_syphon, fake_spout)
        assert (not np.array_equal(plain, marked)) == output.marked, output.label
        if output.marked and output.scheme != "ndi":  # a picture with the band on top
            assert looks_marked(marked[..., :3]), output.label


def test_the_banner_and_the_readme_say_the_same_about_the_mark():
    from io_adapters.encodings import MARKED_OUTPUTS

    assert all(output.label in RANDOM_MARK_NOTE for output in MARKED_OUTPUTS)
    readme = " ".join((ROOT / "README.md").read_text().split())
    marked = ", ".join(o.label for o in MARKED_OUTPUTS if o.marked)
    raw = ", ".join(o.label for o in MARKED_OUTPUTS if not o.marked)
    assert f"carries a burnt-in \"{RANDOM_MODEL_MARK}\" band" in readme
    assert f"{marked}. Raw values stay exact and unmarked: {raw}." in readme
