"""Fake of SpoutGL (the Python wrapper of the Spout SDK; Windows only): the parts
io_adapters/spout_io.py uses, with the real library's rules where they matter to us.

* ``sendImage`` accepts only the four 8-bit GL formats the real binding knows (anything else
  raises ValueError, as its ``getBytesPerPixel`` does) and checks the buffer is large enough
  and C-contiguous.
* A second sender of a taken name is renamed ``NAME_1`` by the SDK (not refused): the fake
  does the same, so a test sees what our own clash check prevents.
* ``receiveImage`` first reports a (new) sender size through ``isUpdated`` without copying,
  returns False while the sender is gone, and copies the newest frame (converted to the
  asked GL format) when given a buffer.

A process-wide ``SENDERS`` dict plays the machine's sender list and ``CALLS`` records
``(what, name, details)`` tuples; ``reset()`` clears both between tests.
"""

from __future__ import annotations

import numpy as np

from SpoutGL import enums

SENDERS: dict = {}
CALLS: list = []
_BYTES_PER_PIXEL = {enums.GL_RGBA: 4, enums.GL_BGRA_EXT: 4, enums.GL_RGB: 3, enums.GL_BGR_EXT: 3}


def reset() -> None:
    SENDERS.clear()
    CALLS.clear()


def _bytes_per_pixel(gl_format: int) -> int:
    if gl_format not in _BYTES_PER_PIXEL:
        raise ValueError("Unknown GL format")
    return _BYTES_PER_PIXEL[gl_format]


def _check_buffer(buffer, width: int, height: int, gl_format: int) -> memoryview:
    view = memoryview(buffer)
    if view.nbytes < width * height * _bytes_per_pixel(gl_format):
        raise BufferError("Buffer not large enough")
    if not view.c_contiguous:
        raise BufferError("Buffer must be contiguous")
    return view


def _to_rgba(pixels: np.ndarray, gl_format: int) -> np.ndarray:
    """[H, W, 3|4] in gl_format -> [H, W, 4] RGBA."""
    if gl_format in (enums.GL_BGRA_EXT, enums.GL_BGR_EXT):
        pixels = pixels[..., [2, 1, 0] + ([3] if pixels.shape[2] == 4 else [])]
    if pixels.shape[2] == 3:
        pixels = np.concatenate([pixels, np.full(pixels.shape[:2] + (1,), 255, np.uint8)], axis=2)
    return pixels


class _SenderState:
    def __init__(self, name: str) -> None:
        self.name = name
        self.frames: list = []  # RGBA copies of every sent picture
        self.formats: list = []


class SpoutSender:
    def __init__(self) -> None:
        self.name: str | None = None

    def setSenderName(self, name: str) -> None:
        actual, i = name, 1
        while actual in SENDERS:  # the SDK's habit: a taken name gets a number
            actual, i = f"{name}_{i}", i + 1
        self.name = actual
        SENDERS[actual] = _SenderState(actual)
        CALLS.append(("sender", actual, None))

    def sendImage(self, buffer, width: int, height: int, gl_format: int, invert: bool, host_fbo: int) -> bool:
        view = _check_buffer(buffer, width, height, gl_format)
        pixels = np.frombuffer(view, np.uint8)[: width * height * _bytes_per_pixel(gl_format)]
        state = SENDERS[self.name]
        state.frames.append(_to_rgba(pixels.reshape(height, width, -1).copy(), gl_format))
        state.formats.append(gl_format)
        CALLS.append(("send", self.name, (width, height, gl_format, invert)))
        return True

    def setFrameSync(self, name: str) -> None:
        CALLS.append(("frame_sync", name, None))

    def releaseSender(self) -> None:
        SENDERS.pop(self.name, None)
        CALLS.append(("release_sender", self.name, None))


class SpoutReceiver:
    def __init__(self) -> None:
        self.name: str | None = None
        self._state = None  # the sender connected to (a new one of the same name starts afresh)
        self._size: tuple[int, int] | None = None  # the sender size this receiver last reported
        self._seen = 0
        self._updated = False
        self._new = False

    def getSenderList(self) -> list[str]:
        return list(SENDERS)

    def setReceiverName(self, name: str) -> None:
        self.name = name
        CALLS.append(("receiver", name, None))

    def receiveImage(self, buffer, gl_format: int, invert: bool, host_fbo: int) -> bool:
        self._updated = self._new = False
        state = SENDERS.get(self.name)
        if state is None:
            return False
        if state is not self._state:  # (re)connection: report the size again, count frames afresh
            self._state, self._size, self._seen = state, None, 0
        if not state.frames:
            return True
        latest = state.frames[-1]
        size = (latest.shape[1], latest.shape[0])
        if size != self._size:
            self._size, self._updated = size, True  # like Spout: report the size, copy nothing yet
            return True
        if buffer is None or len(state.frames) == self._seen:
            return True
        view = _check_buffer(buffer, *size, gl_format)
        self._seen = len(state.frames)
        rgba = latest
        if gl_format in (enums.GL_BGRA_EXT, enums.GL_BGR_EXT):
            rgba = latest[..., [2, 1, 0, 3]]
        out = rgba[..., : _bytes_per_pixel(gl_format)]
        np.frombuffer(view.cast("B"), np.uint8)[: out.size] = out.reshape(-1)
        self._new = True
        return True

    def isUpdated(self) -> bool:
        return self._updated

    def isFrameNew(self) -> bool:
        return self._new

    def isConnected(self) -> bool:
        return self.name in SENDERS

    def getSenderWidth(self) -> int:
        return self._size[0] if self._size else 0

    def getSenderHeight(self) -> int:
        return self._size[1] if self._size else 0

    def releaseReceiver(self) -> None:
        CALLS.append(("release_receiver", self.name, None))
