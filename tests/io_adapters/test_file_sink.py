"""File sinks under stress: true timestamps, a full disk, kill -9, and the start-up checks of outputs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import anyio
import av
import numpy as np
import pytest

from io_adapters.frames import DepthFrame
from io_adapters.npy_stream import NpyStreamWriter, timestamps_path
from io_adapters.output_paths import check_outputs, remove_if_left_empty
from io_adapters.registry import check_source, open_sink
from pipeline.errors import BadInputError, RuntimeFailure
from stream.stages.fanout_stage import SinkSlot, close_sinks
from tests.support.small_fs import small_tmpfs
from tests.conftest import ROOT



def _noise(index: int, height: int = 48, width: int = 64) -> np.ndarray:
    """Depth [H, W] in [0, 1] that compresses badly, so a small disk fills within a few frames."""
    return np.random.default_rng(index).random((height, width), dtype=np.float32)


async def _send_all(sink, frames: list[DepthFrame]) -> None:
    """Every frame (waiting for room, like --no-drop), then close; a writer error is raised."""
    try:
        for frame in frames:
            while sink.wait_for_room(2, 0.0) is False:
                await anyio.sleep(0.001)
            await sink.send(frame)
    finally:
        await sink.close()


def _frame_times(path: Path) -> list[float]:
    with av.open(str(path)) as container:
        return [frame.time for frame in container.decode(video=0)]


def _decoded_frames(path: Path) -> int:
    """Frames in a video file; raises if any part of it cannot be decoded."""
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


# --- True timestamps -------------------------------------------------------------------------


def test_file_sinks_stamp_each_frame_with_its_timestamp_when_frames_were_dropped(tmp_path):
    kept = [i for i in range(45) if i % 4 != 1 and i not in (20, 21, 22)]  # a stream that dropped frames
    times = [i / 30 for i in kept]
    frames = [DepthFrame(index=i, timestamp=t + 2.0, depth=_noise(i)) for i, t in zip(kept, times)]
    uris = [f"file:{tmp_path / 'vfr.mp4'}", f"file:{tmp_path / 'vfr.mkv'}", f"npy:{tmp_path / 'vfr.npy'}"]

    async def main():
        for uri in uris:
            await _send_all(open_sink(uri, fps=30), frames)

    anyio.run(main)
    # Videos start at 0 at the first frame and keep the gaps of the source.
    expected = np.array(times) - times[0]
    assert np.allclose(_frame_times(tmp_path / "vfr.mp4"), expected, atol=1 / 90000)
    assert np.allclose(_frame_times(tmp_path / "vfr.mkv"), expected, atol=1e-3)  # Matroska counts in ms
    assert np.load(tmp_path / "vfr.npy").shape == (len(kept), 48, 64)
    stamps = np.load(tmp_path / "vfr.timestamps.npy")
    assert stamps.dtype == np.float64 and np.array_equal(stamps, np.array(times) + 2.0)


def test_constant_rate_frames_give_a_constant_rate_file(tmp_path):
    frames = [DepthFrame(index=i, timestamp=i * 1001 / 30000, depth=_noise(i)) for i in range(40)]  # 29.97 fps

    async def main():
        await _send_all(open_sink(f"file:{tmp_path / 'cfr.mp4'}", fps=30000 / 1001), frames)

    anyio.run(main)
    with av.open(str(tmp_path / "cfr.mp4")) as container:
        stream = container.streams.video[0]
        pts = [frame.pts for frame in container.decode(stream)]
        assert stream.average_rate == Fraction(30000, 1001)
    assert pts[0] == 0 and set(np.diff(pts)) == {int(round(stream.time_base.denominator * 1001 / 30000 / stream.time_base.numerator))}


# --- Valid at every moment: npy --------------------------------------------------------------


def test_npy_loads_with_the_true_count_while_it_is_being_written(tmp_path):
    path = tmp_path / "live.npy"
    writer = NpyStreamWriter(path)
    assert not path.exists()  # created with the first frame
    for i in range(3):
        writer.write(_noise(i))
        assert np.array_equal(np.load(path), np.stack([_noise(k) for k in range(i + 1)]))  # never 999999999999 frames
    writer.close()
    assert np.load(path).shape == (3, 48, 64)


def test_npy_on_a_full_disk_keeps_the_frames_written_before(tmp_path):
    frame_bytes = 48 * 64 * 4
    with small_tmpfs(tmp_path / "disk", size_kb=64) as disk:
        writer = NpyStreamWriter(disk / "depth.npy")
        written = 0
        with pytest.raises(RuntimeFailure, match=r"failed at frame \d+: No space left on device"):
            for i in range(100):
                writer.write(_noise(i))
                written += 1
        writer.close()
        depth = np.load(disk / "depth.npy")
        assert 0 < written < 100 and depth.shape == (written, 48, 64)
        assert np.array_equal(depth[-1], _noise(written - 1))
        assert (disk / "depth.npy").stat().st_size <= 128 + written * frame_bytes + 4096


# --- Valid at every moment: video, full disk -----------------------------------------------


@pytest.mark.parametrize("name", ["depth.mp4", "depth.mkv"])
def test_video_sink_on_a_full_disk_fails_at_that_frame_and_leaves_only_a_playable_file(tmp_path, name):
    with small_tmpfs(tmp_path / "disk", size_kb=1024) as disk:
        sink = open_sink(f"file:{disk / name}", fps=30)
        frames = [DepthFrame(index=i, timestamp=i / 30, depth=_noise(i)) for i in range(1000)]
        with pytest.raises(RuntimeFailure, match=r"writing .* failed at frame \d+: No space left on device"):
            anyio.run(_send_all, sink, frames)
        assert 30 < sink.sent < 1000
        kept = _decoded_frames(disk / name)  # decodes to the end without an error
        assert 0 < kept <= sink.sent


@pytest.mark.parametrize("name", ["depth.mp4", "depth.mkv"])
def test_video_sink_on_a_disk_full_from_the_start_leaves_no_file(tmp_path, name):
    with small_tmpfs(tmp_path / "disk", size_kb=64, fill=True) as disk:
        sink = open_sink(f"file:{disk / name}", fps=30)
        frames = [DepthFrame(index=i, timestamp=i / 30, depth=_noise(i)) for i in range(8)]
        with pytest.raises(RuntimeFailure, match="No space left on device"):
            anyio.run(_send_all, sink, frames)
        assert not (disk / name).exists()  # no header-only file that no player opens


def test_a_sink_that_fails_while_closing_counts_as_failed():
    class FailsAtClose:
        dropped = 0

        def close(self):
            raise RuntimeFailure("finishing x.mp4 failed: No space left on device")

    slots = [SinkSlot("file:x.mp4", FailsAtClose())]
    reports = []
    anyio.run(close_sinks, slots, reports.append)
    assert slots[0].error and "No space left" in slots[0].error
    assert reports == [f"sink file:x.mp4 failed to close: {slots[0].error}"]


# --- Valid after kill -9 --------------------------------------------------------------------

_WRITE_FOREVER = """
import sys, time
import anyio, numpy as np
from io_adapters.frames import DepthFrame
from io_adapters.registry import open_sink

async def main(folder, gap_s):
    sinks = [open_sink(f"file:{folder}/rec.mp4", fps=30), open_sink(f"file:{folder}/rec.mkv", fps=30),
             open_sink(f"npy:{folder}/rec.npy", fps=30)]
    for i in range(100000):
        depth = np.random.default_rng(i).random((48, 64), dtype=np.float32)
        for sink in sinks:
            await sink.send(DepthFrame(index=i, timestamp=i / 30, depth=depth))
        while any(sink.sent <= i for sink in sinks):  # every frame written before it is announced
            await anyio.sleep(0.001)
        print(i, flush=True)
        await anyio.sleep(gap_s)

anyio.run(main, sys.argv[1], float(sys.argv[2]))
"""


def test_every_file_sink_is_valid_after_kill_9(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(tmp_path), str(1 / 60)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # 3 s of video: at least two complete fragments/clusters
            if int(line) >= 90 or time.monotonic() > deadline:
                break
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.1)
    finally:
        proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows
        proc.wait(timeout=30)
    depth = np.load(tmp_path / "rec.npy")
    stamps = np.load(tmp_path / "rec.timestamps.npy")
    assert depth.shape[0] >= 90 and depth.shape[1:] == (48, 64)
    assert depth.shape[0] - 1 <= len(stamps) <= depth.shape[0]
    assert np.allclose(stamps, np.arange(len(stamps)) / 30)
    assert np.array_equal(depth[-1], np.random.default_rng(depth.shape[0] - 1).random((48, 64), dtype=np.float32))
    for name in ("rec.mp4", "rec.mkv"):
        assert _decoded_frames(tmp_path / name) >= 30, name  # opens and decodes to the end, no error


def test_a_slow_run_killed_with_kill_9_loses_at_most_its_last_frame(tmp_path):
    # 30 fps media made at 2 fps (a slow model): pieces cut per second of media held 15 s of work.
    proc = subprocess.Popen([sys.executable, "-c", _WRITE_FOREVER, str(tmp_path), "0.5"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            announced = int(line)  # frames 0..announced are written by the sinks
            if announced >= 6 or time.monotonic() > deadline:
                break
        assert proc.poll() is None, proc.stderr.read()
    finally:
        proc.kill()  # SIGKILL on POSIX, TerminateProcess on Windows: no chance to finish anything
        proc.wait(timeout=30)
    assert np.load(tmp_path / "rec.npy").shape[0] >= announced + 1
    for name in ("rec.mp4", "rec.mkv"):  # the muxer completes a frame's piece when the next arrives
        assert _decoded_frames(tmp_path / name) >= announced, name


# --- Start-up checks --------------------------------------------------------------------------


def test_two_sinks_writing_one_file_are_rejected_however_it_is_spelt(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    clashes = [
        ["file:x.mp4?cmap=turbo", "file:x.mp4?cmap=Greys_r"],
        ["file:same.mkv", "npy:same.mkv"],
        ["file:./x.mp4", "file:x.mp4"],
        ["file:x.mp4", f"file:{tmp_path}/sub/../x.mp4"],
        ["file:real/x.mkv", "file:link/x.mkv"],
        ["npy:d.npy", "npy:d.timestamps.npy"],  # the first one's timestamps file
    ]
    (tmp_path / "sub").mkdir()
    (tmp_path / "take.mkv").write_bytes(b"")
    (tmp_path / "alias.mkv").symlink_to(tmp_path / "take.mkv")
    clashes.append(["file:take.mkv", "file:alias.mkv"])  # an existing file and a link to it
    for uris in clashes:
        with pytest.raises(BadInputError, match="both write"):
            check_outputs(uris)
    with pytest.raises(BadInputError, match="npy:d.npy and --stats-json both write"):
        check_outputs(["npy:d.npy"], {"--stats-json": "./d.npy"})
    check_outputs(["file:x.mp4", "file:x.mkv", "npy:x.npy", "null:", "ndi:x.mp4"], {"--stats-json": None})


def test_outputs_that_cannot_be_written_are_rejected(tmp_path):
    (tmp_path / "folder.npy").mkdir()
    cases = {
        f"npy:{tmp_path / 'folder.npy'}": "is a folder",
        f"npy:{tmp_path}": "is a folder",
        f"file:{tmp_path / 'missing' / 'x.mp4'}": "does not exist",
    }
    for uri, message in cases.items():
        with pytest.raises(BadInputError, match=message):
            check_outputs([uri])
    with pytest.raises(BadInputError, match="--stats-json: .* is a folder"):
        check_outputs([], {"--stats-json": str(tmp_path)})
    with small_tmpfs(tmp_path / "ro", read_only=True) as read_only:
        for uri in (f"file:{read_only / 'x.mp4'}", f"npy:{read_only / 'x.npy'}"):
            with pytest.raises(BadInputError, match="cannot write .*Read-only file system"):
                check_outputs([uri])
        with pytest.raises(BadInputError, match="--stats-json: cannot write"):
            check_outputs([], {"--stats-json": str(read_only / "stats.jsonl")})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.npy", "ro"]  # the probe files are gone


def test_source_sizes_have_an_upper_bound():
    with pytest.raises(BadInputError, match="at most 8192"):
        check_source("test:?size=100000x100000")
    with pytest.raises(BadInputError, match="at most 8192"):
        check_source("test:?size=640x8193")
    check_source("test:?size=8192x4320")


def test_a_folder_created_for_outputs_is_removed_when_left_empty(tmp_path):
    target = tmp_path / "a" / "b"
    with pytest.raises(RuntimeError):
        with remove_if_left_empty(target):
            target.mkdir(parents=True)
            raise RuntimeError("the run failed")
    assert not (tmp_path / "a").exists()
    with remove_if_left_empty(target):
        target.mkdir(parents=True)
        (target / "clip_pred.npy").write_bytes(b"x")
    assert (target / "clip_pred.npy").exists()
    assert timestamps_path("out/depth.npy") == Path("out/depth.timestamps.npy")


def test_a_node_that_drops_frames_writes_files_that_keep_the_source_timing(tmp_path):
    from stream.stages.display_normalizer import parse_normalize
    from pipeline.snippets import SnippetPlan
    from stream.node import NodeConfig, StreamNode
    from bench.support.stream_doubles import FakeSteps, ListSource, make_aligner

    config = NodeConfig(plan=SnippetPlan(3, (1, 4)), drop_frames=True)
    sinks = [(uri, open_sink(uri, fps=30)) for uri in (f"file:{tmp_path / 'd.mp4'}", f"npy:{tmp_path / 'd.npy'}")]
    node = StreamNode(ListSource(90, interval=0.005), sinks, FakeSteps(predict_delay=0.03),
                      make_aligner(config.plan, config.lookahead), parse_normalize("running"), config,
                      report=lambda _message: None)
    result = anyio.run(node.run)
    stamps = np.load(tmp_path / "d.timestamps.npy")
    assert result.dropped > 10 and len(stamps) == result.frames_out == result.frames_processed
    gaps = np.round(np.diff(stamps) * 30).astype(int)
    assert gaps.min() >= 1 and gaps.max() > 1  # source timestamps, with the gaps of dropped frames
    assert np.allclose(_frame_times(tmp_path / "d.mp4"), stamps - stamps[0], atol=1 / 90000)
