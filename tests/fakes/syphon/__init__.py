"""Fake of syphon-python's Metal API (the parts io_adapters/syphon_io.py uses).

A process-wide ``SERVERS`` dict plays the system's Syphon directory and ``CALLS`` records
``(what, name, details)`` tuples; ``reset()`` clears both between tests.
"""

from dataclasses import dataclass

import numpy as np

SERVERS: dict = {}
CALLS: list = []
APP_NAME = "python"


def reset() -> None:
    SERVERS.clear()
    CALLS.clear()


class FakeDevice:
    """Stands in for an MTLDevice."""


class FakeTexture:
    """Stands in for an MTLTexture: BGRA8 storage of a fixed size."""

    def __init__(self, width: int, height: int) -> None:
        self._width, self._height = width, height
        self.pixels = np.zeros((height, width, 4), np.uint8)

    def width(self) -> int:
        return self._width

    def height(self) -> int:
        return self._height


@dataclass
class SyphonServerDescription:
    uuid: str
    name: str
    app_name: str
    icon: object
    raw: object


class SyphonMetalServer:
    def __init__(self, name: str, device=None, command_queue=None) -> None:
        self.name = name
        self.device = device or FakeDevice()
        self.frames: list = []  # copies of every published picture
        self.flipped: list = []
        self.stopped = False
        SERVERS[name] = self
        CALLS.append(("server", name, None))

    def publish_frame_texture(self, texture, region=None, size=None, is_flipped=False, **_):
        self.frames.append(texture.pixels.copy())
        self.flipped.append(is_flipped)
        CALLS.append(("publish", self.name, (texture.width(), texture.height(), is_flipped)))

    @property
    def has_clients(self) -> bool:
        return False

    def stop(self) -> None:
        self.stopped = True
        SERVERS.pop(self.name, None)
        CALLS.append(("stop", self.name, None))


class SyphonServerDirectory:
    def __init__(self) -> None:
        self.run_loop_interval = 1.0

    @property
    def servers(self):
        return [SyphonServerDescription(f"uuid-{n}", n, APP_NAME, None, s) for n, s in SERVERS.items()]


class SyphonMetalClient:
    def __init__(self, description, device=None) -> None:
        self._server = description.raw
        self._seen = len(self._server.frames)  # like Syphon: only frames published from now on
        CALLS.append(("client", description.name, None))

    @property
    def is_valid(self) -> bool:
        return not self._server.stopped

    @property
    def has_new_frame(self) -> bool:
        return len(self._server.frames) > self._seen

    @property
    def new_frame_image(self):
        pixels = self._server.frames[-1]
        self._seen = len(self._server.frames)
        texture = FakeTexture(pixels.shape[1], pixels.shape[0])
        texture.pixels[:] = pixels
        return texture

    def stop(self) -> None:
        CALLS.append(("client_stop", self._server.name, None))
