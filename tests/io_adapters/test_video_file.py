"""Video files through PyAV (io_adapters/video_file.py, video_writers.py): real encodes and decodes, small sizes."""

from pathlib import Path

import av
import numpy as np
import pytest

from io_adapters.video_file import iter_video_frames, probe_video, read_gray16_video
from io_adapters.video_writers import ColorVideoWriter, Gray16VideoWriter
from pipeline.errors import BadInputError


def _gradient_frames(n: int, height: int, width: int) -> list[np.ndarray]:
    """Smooth frames whose content moves: H.264 keeps them close enough to compare means."""
    y, x = np.mgrid[0:height, 0:width]
    return [np.stack([(x * 4 + i * 8) % 256, (y * 4) % 256, np.full_like(x, 128)], -1).astype(np.uint8) for i in range(n)]


def _write_mp4(path: Path, frames, fps=30.0) -> Path:
    with ColorVideoWriter(path, fps) as writer:
        for rgb in frames:
            writer.write(rgb)
    return path


def test_gray16_ffv1_round_trip_is_bit_exact(tmp_path):
    rng = np.random.default_rng(0)
    depth = rng.integers(0, 65536, size=(5, 33, 47), dtype=np.uint16)  # odd size on purpose
    depth[0, 0, 0], depth[0, 0, 1] = 0, 65535
    path = tmp_path / "depth.mkv"
    with Gray16VideoWriter(path, fps=24.0) as writer:
        for frame in depth:
            writer.write(frame)
    writer.close()  # idempotent
    assert np.array_equal(read_gray16_video(path), depth)


def test_mp4_has_every_frame_and_the_rate(tmp_path):
    frames = _gradient_frames(12, 48, 64)
    path = _write_mp4(tmp_path / "c.mp4", frames, fps=29.97)
    info = probe_video(path)
    assert (info.width, info.height, info.frame_count) == (64, 48, 12)
    assert info.fps == pytest.approx(29.97, abs=1e-3)
    decoded = list(iter_video_frames(path))
    assert len(decoded) == 12
    assert np.abs(decoded[5].astype(int) - frames[5]).mean() < 4


def test_odd_size_is_padded_to_even(tmp_path):
    path = _write_mp4(tmp_path / "odd.mp4", _gradient_frames(3, 31, 45))
    info = probe_video(path)
    assert (info.width, info.height) == (46, 32)


def test_interrupted_run_still_leaves_a_valid_file(tmp_path):
    path = tmp_path / "cut.mp4"
    with pytest.raises(KeyboardInterrupt):
        with ColorVideoWriter(path, 30.0) as writer:
            for i, rgb in enumerate(_gradient_frames(10, 32, 32)):
                if i == 6:
                    raise KeyboardInterrupt
                writer.write(rgb)
    assert len(list(iter_video_frames(path))) == 6


def test_start_and_count_select_frames(tmp_path):
    frames = [np.full((16, 16, 3), 20 * i, np.uint8) for i in range(10)]
    path = _write_mp4(tmp_path / "s.mp4", frames)
    got = list(iter_video_frames(path, start_frame=3, frame_count=4))
    assert len(got) == 4
    assert [round(float(g.mean()) / 20) for g in got] == [3, 4, 5, 6]


def test_rotation_metadata_is_honoured(tmp_path):
    path = tmp_path / "rot.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=30)
    stream.width, stream.height, stream.pix_fmt = 64, 32, "yuv420p"
    stream.set_display_rotation(90)  # counter-clockwise
    image = np.zeros((32, 64, 3), np.uint8)
    image[:, :16] = 255  # white left band
    for _ in range(2):
        for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    info = probe_video(path)
    assert (info.width, info.height) == (32, 64)
    rgb = next(iter_video_frames(path))
    assert rgb.shape == (64, 32, 3)
    # Turned counter-clockwise, the left band ends up at the bottom.
    assert rgb[-8:].mean() > 200 and rgb[:40].mean() < 30


def test_ten_bit_input_decodes_to_rgb8(tmp_path):
    path = tmp_path / "ten.mp4"
    container = av.open(str(path), "w")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p10le"
    grey = av.VideoFrame.from_ndarray(np.full((32, 32, 3), 200, np.uint8), format="rgb24")
    for packet in stream.encode(grey.reformat(format="yuv420p10le")):
        container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    (rgb,) = list(iter_video_frames(path))
    assert rgb.dtype == np.uint8 and abs(float(rgb.mean()) - 200) < 4


def test_truncated_mp4_gives_good_frames_then_a_clear_error(tmp_path):
    path = _write_mp4(tmp_path / "full.mp4", [np.random.default_rng(i).integers(0, 255, (48, 64, 3), np.uint8) for i in range(30)])
    cut = tmp_path / "cut.mp4"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    got = []
    with pytest.raises(BadInputError, match=r"cut\.mp4.*frame (\d+)") as err:
        for rgb in iter_video_frames(cut):
            got.append(rgb)
    assert 0 < len(got) < 30
    assert f"frame {len(got)}" in str(err.value)


def test_truncated_mkv_is_detected(tmp_path):
    path = tmp_path / "d.mkv"
    with Gray16VideoWriter(path, fps=30.0) as writer:
        for i in range(30):
            writer.write(np.random.default_rng(i).integers(0, 65535, (32, 32), dtype=np.uint16))
    assert len(list(iter_video_frames(path))) == 30  # the whole file is not flagged
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    got = []
    with pytest.raises(BadInputError, match="cut.mkv"):
        for rgb in iter_video_frames(cut):
            got.append(rgb)
    assert 0 < len(got) < 30


def test_bad_inputs_give_one_clear_line(tmp_path):
    with pytest.raises(BadInputError, match="not found"):
        probe_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 10)
    with pytest.raises(BadInputError, match="junk.mp4"):
        probe_video(junk)
    audio = tmp_path / "a.wav"
    container = av.open(str(audio), "w")
    container.add_stream("pcm_s16le", rate=8000)
    container.close()
    with pytest.raises(BadInputError):
        probe_video(audio)
    with pytest.raises(BadInputError, match="uint8"):
        ColorVideoWriter(tmp_path / "x.mp4", 30).write(np.zeros((4, 4), np.float32))
    with pytest.raises(BadInputError, match="frame rate"):
        Gray16VideoWriter(tmp_path / "x.mkv", 0)
