"""Syphon sink/source against a fake of syphon-python on Linux; the real framework on macOS."""

import sys

import anyio
import numpy as np
import pytest

from io_adapters.frames import DepthFrame
from io_adapters.registry import open_sink, open_source
from io_adapters.encodings import apply_colormap, to_uint16, unpack16_bgra
from pipeline.errors import BadInputError
from tests.support.texture_fakes import fake_syphon, forget_syphon_modules  # noqa: F401  (fake_syphon: a fixture)


def _ramp(height=24, width=40):
    return (np.mgrid[0:height, 0:width][1] / (width - 1)).astype(np.float32)


async def _send_all(sink, depths):
    for i, depth in enumerate(depths):
        await sink.send(DepthFrame(index=i, timestamp=i / 30, depth=depth))
        with anyio.fail_after(5):
            while sink.sent < i + 1:
                await anyio.sleep(0.002)
    await sink.close()


def test_syphon_off_macos_is_a_clear_error(monkeypatch):
    if sys.platform == "darwin":
        pytest.skip("only meaningful off macOS")
    forget_syphon_modules()
    monkeypatch.setitem(sys.modules, "syphon", None)  # import syphon -> ImportError
    with pytest.raises(BadInputError, match=r"syphon: URIs need macOS.*ndi:"):
        open_sink("syphon:Depth")
    with pytest.raises(BadInputError, match="need macOS"):
        open_source("syphon:Resolume")


def test_packed16_sink_publishes_exact_16_bit_depth(fake_syphon):
    depth = _ramp()

    async def main():
        sink = open_sink("syphon:Depth?format=packed16")
        await _send_all(sink, [depth, depth[:, ::-1].copy()])

    anyio.run(main)
    server_calls = [c for c in fake_syphon.CALLS if c[0] in ("server", "publish", "stop")]
    assert server_calls[0] == ("server", "Depth", None)
    assert [c[0] for c in server_calls] == ["server", "publish", "publish", "stop"]
    assert server_calls[1][2] == (40, 24, False)  # width, height, not flipped
    textures = [c for c in fake_syphon.CALLS if c[0] == "texture"]
    assert textures == [("texture", None, (40, 24))]  # one texture reused while the size stays


def test_packed16_values_round_trip(fake_syphon):
    depth = _ramp()
    servers = []

    async def main():
        sink = open_sink("syphon:Depth16?format=packed16")
        servers.append(sink.server)
        await _send_all(sink, [depth])

    anyio.run(main)
    (frame,) = servers[0].frames
    assert frame.shape == (24, 40, 4) and (frame[..., 3] == 255).all()
    assert np.array_equal(unpack16_bgra(frame), to_uint16(depth))


def test_color_sink_is_colour_mapped_bgra_and_follows_size(fake_syphon):
    small, big = _ramp(8, 10), _ramp(16, 20)
    servers = []

    async def main():
        sink = open_sink("syphon:Color?cmap=turbo")
        servers.append(sink.server)
        await _send_all(sink, [small, big])

    anyio.run(main)
    first, second = servers[0].frames
    assert np.array_equal(first[..., :3], apply_colormap(small, "turbo")[..., ::-1])
    assert second.shape == (16, 20, 4)
    assert [c[2] for c in fake_syphon.CALLS if c[0] == "texture"] == [(10, 8), (20, 16)]


def test_syphon_option_errors(fake_syphon):
    with pytest.raises(BadInputError, match="color, packed16"):
        open_sink("syphon:D?format=rgb16")
    with pytest.raises(BadInputError, match="cmap only applies"):
        open_sink("syphon:D?format=packed16&cmap=turbo")
    with pytest.raises(BadInputError, match="server name"):
        open_sink("syphon:")


def test_syphon_source_receives_from_a_named_server(fake_syphon):
    server = fake_syphon.SyphonMetalServer("Resolume Out")
    texture = fake_syphon.FakeTexture(6, 4)

    async def main():
        source = open_source("syphon:Resolume Out?timeout=2")
        async with anyio.create_task_group() as group:
            async def publish():
                await anyio.sleep(0.05)
                texture.pixels[:] = [10, 20, 30, 255]  # BGRA
                server.publish_frame_texture(texture)

            group.start_soon(publish)
            frame = await source.recv()
        await source.close()
        return frame

    frame = anyio.run(main)
    assert frame.rgb.shape == (4, 6, 3) and frame.rgb[0, 0].tolist() == [30, 20, 10]


def test_syphon_source_unknown_server_lists_servers(fake_syphon):
    fake_syphon.SyphonMetalServer("Other")

    async def main():
        source = open_source("syphon:Missing?timeout=0.2")
        try:
            await source.recv()
        finally:
            await source.close()

    with pytest.raises(BadInputError, match=r"'Missing' not found.*python: Other"):
        anyio.run(main)


@pytest.mark.macos
@pytest.mark.skipif(sys.platform != "darwin", reason="needs the real Syphon framework (macOS)")
def test_real_syphon_server_to_client_round_trip():
    pytest.importorskip("syphon")
    depth = _ramp(64, 96)

    async def main():
        sink = open_sink("syphon:rdstream-test?format=packed16")
        source = open_source("syphon:rdstream-test?timeout=5")
        async with anyio.create_task_group() as group:
            async def keep_sending():
                for i in range(60):
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


def test_rgbd_layouts_publish_the_colour_frame_beside_or_above_and_follow_live_cmaps(fake_syphon):
    depth = _ramp()
    rgb = np.random.default_rng(1).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    servers = []

    async def main():
        for uri in ("syphon:Side?format=packed16&layout=rgbd", "syphon:Top?layout=rgbd-v&cmap=turbo"):
            sink = open_sink(uri)
            assert sink.wants_colour
            servers.append(sink.server)
            await sink.send(DepthFrame(index=0, timestamp=0.0, depth=depth, rgb=rgb))
            await sink.send(DepthFrame(index=1, timestamp=1 / 30, depth=depth, rgb=rgb, cmap="inferno"))
            await sink.close()

    anyio.run(main)
    side, top = servers[0].frames, servers[1].frames
    assert side[0].shape == (24, 80, 4) and top[0].shape == (48, 40, 4)
    assert np.array_equal(side[0][:, :40, 2::-1], rgb) and np.array_equal(unpack16_bgra(side[0][:, 40:]), to_uint16(depth))
    assert np.array_equal(top[0][:24, :, 2::-1], rgb)
    assert np.array_equal(top[0][24:, :, 2::-1], apply_colormap(depth, "turbo"))
    assert np.array_equal(top[1][24:, :, 2::-1], apply_colormap(depth, "inferno"))  # the live (OSC) colour map
