"""Spout sink/source against a fake of SpoutGL off Windows; the real Spout SDK on Windows."""

import subprocess
import sys

import anyio
import numpy as np
import pytest

from io_adapters.encodings import RANDOM_MODEL_MARK, apply_colormap, burn_mark, to_uint16, unpack16_bgra
from io_adapters.frames import DepthFrame, EndOfStream
from io_adapters.registry import check_sink, check_source, list_sources, open_sink, open_source
from pipeline.errors import BadInputError, RuntimeFailure
from tests.support.texture_fakes import fake_spout, forget_spout_modules  # noqa: F401  (fake_spout: a fixture)

GL_BGRA_EXT = 0x80E1


def _ramp(height=24, width=40):
    return (np.mgrid[0:height, 0:width][1] / (width - 1)).astype(np.float32)


async def _send_all(sink, frames):
    """Send one frame at a time, each after the writer finished the one before (none dropped)."""
    start = sink.sent
    for i, frame in enumerate(frames):
        await sink.send(frame)
        with anyio.fail_after(5):
            while sink.sent < start + i + 1:
                await anyio.sleep(0.002)


def _sent_bgra(fake, name):
    """What receivers got from sender ``name``, back in BGRA order (the fake keeps RGBA)."""
    return [frame[..., [2, 1, 0, 3]] for frame in fake.SENDERS[name].frames]


def test_spout_off_windows_is_one_clear_line(monkeypatch):
    if sys.platform == "win32":
        pytest.skip("only meaningful off Windows")
    forget_spout_modules()
    monkeypatch.setitem(sys.modules, "SpoutGL", None)  # import SpoutGL -> ImportError
    with pytest.raises(BadInputError, match=r"spout: URIs need Windows.*ndi:NAME"):
        open_sink("spout:Depth")
    with pytest.raises(BadInputError, match="need Windows"):
        open_source("spout:TDSpoutOut")
    with pytest.raises(BadInputError, match="need Windows"):
        check_sink("spout:Depth?format=packed16&layout=rgbd")
    with pytest.raises(BadInputError, match="need Windows"):
        check_source("spout:TDSpoutOut?timeout=3")


def test_spoutgl_missing_on_windows_is_bad_input_saying_what_to_install(monkeypatch):
    forget_spout_modules()
    monkeypatch.setitem(sys.modules, "SpoutGL", None)
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(BadInputError, match=r"need the SpoutGL package: pip install \"rollingdepth-stream\[spout\]\"") as raised:
        check_sink("spout:Depth")
    assert raised.value.exit_code == 2 and "\n" not in str(raised.value)
    with pytest.raises(BadInputError, match="SpoutGL package"):
        open_source("spout:TDSpoutOut")


@pytest.mark.skipif(sys.platform == "win32", reason="the Windows-only error is for other platforms")
def test_rdstream_run_with_spout_off_windows_exits_2_before_the_model_loads(tmp_path):
    result = subprocess.run([sys.executable, "-m", "stream.cli", "run", "--source", "test:?frames=3",
                             "--sink", "spout:Depth", "-c", str(tmp_path / "no-checkpoint")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("rdstream: error: spout: URIs need Windows") and result.stderr.count("\n") == 1


def test_color_sink_sends_8_bit_bgra_colour_map_and_follows_size_and_live_cmap(fake_spout):
    small, big = _ramp(8, 10), _ramp(16, 20)

    async def main():
        sink = open_sink("spout:Depth?cmap=turbo")
        await _send_all(sink, [DepthFrame(index=0, timestamp=0.0, depth=small),
                               DepthFrame(index=1, timestamp=1 / 30, depth=big, cmap="inferno")])
        frames = _sent_bgra(fake_spout, "Depth")
        await sink.close()
        return frames

    first, second = anyio.run(main)
    assert first.shape == (8, 10, 4) and second.shape == (16, 20, 4)
    assert np.array_equal(first[..., 2::-1], apply_colormap(small, "turbo"))
    assert np.array_equal(second[..., 2::-1], apply_colormap(big, "inferno"))  # the live (OSC) colour map
    sends = [call[2] for call in fake_spout.CALLS if call[0] == "send"]
    assert sends == [(10, 8, GL_BGRA_EXT, False), (20, 16, GL_BGRA_EXT, False)]  # 8-bit BGRA, not inverted
    assert ("release_sender", "Depth", None) in fake_spout.CALLS and "Depth" not in fake_spout.SENDERS


def test_colour_from_the_random_test_model_carries_the_mark_as_on_syphon(fake_spout):
    depth = np.full((64, 160), 0.5, dtype=np.float32)

    async def main():
        sink = open_sink("spout:Marked?cmap=turbo")
        await _send_all(sink, [DepthFrame(index=0, timestamp=0.0, depth=depth, mark=RANDOM_MODEL_MARK)])
        frames = _sent_bgra(fake_spout, "Marked")
        await sink.close()
        return frames

    (frame,) = anyio.run(main)
    expected = burn_mark(np.ascontiguousarray(apply_colormap(depth, "turbo")), RANDOM_MODEL_MARK)
    assert np.array_equal(frame[..., 2::-1], expected)
    assert not np.array_equal(expected, apply_colormap(depth, "turbo"))


def test_packed16_sink_carries_exact_16_bit_depth_in_two_8_bit_channels(fake_spout):
    depth = _ramp()

    async def main():
        sink = open_sink("spout:Depth16?format=packed16")
        await _send_all(sink, [DepthFrame(index=0, timestamp=0.0, depth=depth)])
        frames = _sent_bgra(fake_spout, "Depth16")
        await sink.close()
        return frames

    (frame,) = anyio.run(main)
    assert frame.shape == (24, 40, 4) and (frame[..., 3] == 255).all()
    assert np.array_equal(unpack16_bgra(frame), to_uint16(depth))


def test_rgbd_layouts_put_the_colour_frame_beside_or_above(fake_spout):
    depth = _ramp()
    rgb = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    sent = {}

    async def main():
        for name, query in (("Side", "format=packed16&layout=rgbd"), ("Top", "layout=rgbd-v&cmap=turbo")):
            sink = open_sink(f"spout:{name}?{query}")
            assert sink.wants_colour
            await _send_all(sink, [DepthFrame(index=0, timestamp=0.0, depth=depth, rgb=rgb)])
            sent[name] = _sent_bgra(fake_spout, name)[0]
            await sink.close()

    anyio.run(main)
    side, top = sent["Side"], sent["Top"]
    assert side.shape == (24, 80, 4) and top.shape == (48, 40, 4)
    assert np.array_equal(side[:, :40, 2::-1], rgb) and np.array_equal(unpack16_bgra(side[:, 40:]), to_uint16(depth))
    assert np.array_equal(top[:24, :, 2::-1], rgb)
    assert np.array_equal(top[24:, :, 2::-1], apply_colormap(depth, "turbo"))


def test_a_taken_sender_name_is_refused_instead_of_renamed(fake_spout):
    other = fake_spout.SpoutSender()
    other.setSenderName("Depth")  # TouchDesigner's Spout Out TOP, say
    with pytest.raises(RuntimeFailure, match=r"Spout sender 'Depth'.*in use.*spout:Depth 2"):
        open_sink("spout:Depth")
    assert list(fake_spout.SENDERS) == ["Depth"]  # no renamed 'Depth_1' left behind


def test_sink_keeps_sending_when_its_receiver_goes_away(fake_spout):
    depth = _ramp(4, 6)

    async def main():
        sink = open_sink("spout:Depth")
        receiver = fake_spout.SpoutReceiver()  # TouchDesigner's Spout In TOP
        receiver.setReceiverName("Depth")
        frames = [DepthFrame(index=i, timestamp=i / 30, depth=depth) for i in range(4)]
        await _send_all(sink, frames[:1])
        assert receiver.receiveImage(None, GL_BGRA_EXT, False, 0) and receiver.isUpdated()
        receiver.releaseReceiver()  # ... the TOP is deleted
        await _send_all(sink, frames)  # 1 + 4 sends in all
        await sink.close()
        return sink

    sink = anyio.run(main)
    assert sink.sent == 5 and sink.dropped == 0
    assert [c[0] for c in fake_spout.CALLS].count("send") == 5


def _publish(fake, sender, colour, size=(6, 4)):
    pixels = np.zeros((size[1], size[0], 4), np.uint8)
    pixels[:] = colour  # BGRA
    assert sender.sendImage(pixels, size[0], size[1], GL_BGRA_EXT, False, 0)


def test_source_receives_rgb_from_a_named_sender(fake_spout):
    sender = fake_spout.SpoutSender()
    sender.setSenderName("TDSpoutOut")

    async def main():
        source = open_source("spout:TDSpoutOut?timeout=2")
        async with anyio.create_task_group() as group:
            async def publish():
                await anyio.sleep(0.05)
                _publish(fake_spout, sender, [10, 20, 30, 255])

            group.start_soon(publish)
            with anyio.fail_after(5):
                frame = await source.recv()
        await source.close()
        return frame

    frame = anyio.run(main)
    assert frame.rgb.shape == (4, 6, 3) and frame.rgb[0, 0].tolist() == [30, 20, 10]


def test_source_waits_for_a_sender_that_goes_away_and_comes_back_at_another_size(fake_spout):
    sender = fake_spout.SpoutSender()
    sender.setSenderName("Cam")

    async def main():
        source = open_source("spout:Cam?timeout=2")
        async with anyio.create_task_group() as group:
            async def publish_first():
                await anyio.sleep(0.05)
                _publish(fake_spout, sender, [1, 2, 3, 255])

            group.start_soon(publish_first)
            with anyio.fail_after(5):
                first = await source.recv()
        sender.releaseSender()  # the sending program quits ...
        async with anyio.create_task_group() as group:
            async def come_back():
                await anyio.sleep(0.2)
                again = fake_spout.SpoutSender()  # ... and starts again, bigger
                again.setSenderName("Cam")
                _publish(fake_spout, again, [4, 5, 6, 255], size=(8, 2))

            group.start_soon(come_back)
            with anyio.fail_after(5):
                second = await source.recv()
        await source.close()
        return first, second

    first, second = anyio.run(main)
    assert first.rgb.shape == (4, 6, 3) and first.rgb[0, 0].tolist() == [3, 2, 1]
    assert second.rgb.shape == (2, 8, 3) and second.rgb[0, 0].tolist() == [6, 5, 4]


def test_closing_a_source_that_waits_for_a_gone_sender_returns_at_once(fake_spout):
    sender = fake_spout.SpoutSender()
    sender.setSenderName("Gone")

    async def main():
        source = open_source("spout:Gone?timeout=2")
        _publish(fake_spout, sender, [0, 0, 0, 255])
        with anyio.fail_after(5):
            await source.recv()
        sender.releaseSender()
        ended = []

        async def wait_for_a_frame():
            try:
                await source.recv()
            except EndOfStream:
                ended.append(True)

        async with anyio.create_task_group() as group:
            group.start_soon(wait_for_a_frame)
            await anyio.sleep(0.1)
            with anyio.fail_after(2):
                await source.close()
        return ended

    assert anyio.run(main) == [True]  # the waiting recv ends the stream; nothing hangs
    assert ("release_receiver", "Gone", None) in fake_spout.CALLS


def test_source_unknown_sender_lists_the_senders(fake_spout):
    fake_spout.SpoutSender().setSenderName("Other")

    async def main():
        source = open_source("spout:Missing?timeout=0.2")
        try:
            await source.recv()
        finally:
            await source.close()

    with pytest.raises(BadInputError, match=r"'Missing' not found within 0.2 s; senders seen: 'Other'"):
        anyio.run(main)


def test_rdstream_sources_lists_spout_senders(fake_spout, monkeypatch):
    import io_adapters.camera
    import io_adapters.ndi.finder

    monkeypatch.setattr(io_adapters.camera, "camera_uris", lambda: [])
    monkeypatch.setattr(io_adapters.ndi.finder, "list_ndi_sources", lambda *args: [])
    fake_spout.SpoutSender().setSenderName("TDSpoutOut")
    from io_adapters.listing import format_sources

    listing = list_sources(ndi_wait_s=0.01)
    assert listing["spout"] == ["spout:TDSpoutOut"]
    assert "Spout senders:\n  spout:TDSpoutOut" in format_sources(listing)


@pytest.mark.windows
@pytest.mark.skipif(sys.platform != "win32", reason="needs the real Spout SDK (Windows, with a GPU driver)")
def test_real_spout_sender_to_receiver_round_trip():
    pytest.importorskip("SpoutGL")
    depth = _ramp(64, 96)

    async def main():
        sink = open_sink("spout:rdstream-test?format=packed16")
        source = open_source("spout:rdstream-test?timeout=5")
        async with anyio.create_task_group() as group:
            async def keep_sending():
                for i in range(120):
                    await sink.send(DepthFrame(index=i, timestamp=i / 30, depth=depth))
                    await anyio.sleep(1 / 30)

            group.start_soon(keep_sending)
            with anyio.fail_after(10):
                frame = await source.recv()
            group.cancel_scope.cancel()
        await source.close()
        await sink.close()
        return frame

    frame = anyio.run(main)
    assert frame.rgb.shape == (64, 96, 3)
    high, low = frame.rgb[..., 0].astype(np.uint16), frame.rgb[..., 1].astype(np.uint16)
    assert np.array_equal((high << 8) | low, to_uint16(depth))
