"""The two edges of the node, in the style of aiortc's media tracks.

A ``Source`` is one object with ``async recv() -> VideoFrame`` (raising ``EndOfStream`` at the
end) and ``async close()``. A ``Sink`` has ``async send(DepthFrame)`` and ``async close()``.
Everything between them only sees frames with timestamps. These two classes declare everything
the streaming node calls on its edges; the node calls nothing else. (A test double may implement
``recv``/``send``/``close`` as blocking functions: the node runs those in a worker thread, see
stream.stages.calls.)

Most device and codec libraries (PyAV, NDI, Syphon) block. The two helper bases here keep
them off the event loop, once for every adapter:

* ``BlockingSource`` runs the subclass's blocking ``_read()`` in a worker thread per ``recv()``
  and, when ``realtime`` is on, paces frames to their timestamps (pacing lives only here).
* ``ThreadedSink`` owns one writer thread fed by a bounded queue. ``send()`` only appends and
  returns at once; when the queue is full the OLDEST waiting frame is dropped and counted in
  ``dropped``, so a slow receiver can never stall the node (live output wants the newest frame).
  ``close()`` drains what is queued, then finalises (files are valid afterwards).
"""

from __future__ import annotations

import collections
import threading
import time
from abc import ABC, abstractmethod

import anyio
import anyio.to_thread
import numpy as np

from io_adapters.frames import DepthFrame, EndOfStream, VideoFrame
from pipeline.errors import BadInputError, RollingDepthError, RuntimeFailure

# Live outputs: one frame being written plus two waiting keeps latency at a frame or two.
DEFAULT_SINK_QUEUE = 2


class Source(ABC):
    """A stream of RGB frames.

    uri: the URI it was opened from.
    nominal_fps: the source's frame rate, or None when unknown (e.g. a live source without one).
    """

    uri: str
    nominal_fps: float | None

    @abstractmethod
    async def recv(self) -> VideoFrame:
        """Next frame; raises ``EndOfStream`` at the end, BadInputError/RuntimeFailure on errors."""

    @abstractmethod
    async def close(self) -> None:
        """Release the device or file; safe to call more than once."""

    def wait_until_there(self) -> None:
        """Block until the source can deliver, raising what the first ``recv`` would (an NDI
        sender not found); by default opening has checked everything already."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


class Sink(ABC):
    """A consumer of depth frames.

    uri: the URI it was opened from.
    dropped: frames discarded because the sink could not keep up (oldest dropped first).
    buffered: True when ``send`` only queues the frame for a writer thread; a lossless sender
        (``--no-drop``) then calls ``wait_for_room`` before each send so the queue never drops.
    wants_colour: True when the sink shows the input frame beside the depth (``layout=rgbd``);
        the node only carries ``DepthFrame.rgb`` when some sink does.
    """

    uri: str = ""
    dropped: int = 0
    buffered: bool = False
    wants_colour: bool = False

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Blocking: wait until fewer than ``limit`` frames are unwritten; False on timeout.
        A sink that is not ``buffered`` writes in ``send`` and always has room."""
        return True

    @abstractmethod
    async def send(self, frame: DepthFrame) -> None:
        """Hand over one frame; returns quickly and never waits for a slow receiver."""

    @abstractmethod
    async def close(self) -> None:
        """Drain and finalise; safe to call more than once. Files are valid afterwards."""

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()


def _as_user_error(err: BaseException, what: str) -> RollingDepthError:
    """Keep our one-line errors as they are; wrap anything unexpected in one line naming ``what``."""
    if isinstance(err, RollingDepthError):
        return err
    return RuntimeFailure(f"{what}: {type(err).__name__}: {err}")


class BlockingSource(Source):
    """Base for sources whose library blocks.

    Subclasses implement ``_read() -> (timestamp_s, rgb) | None`` (None = end of stream; blocking
    is fine, it runs in a worker thread) and ``_release()``. The base numbers the frames, makes
    timestamps start at 0 and, when ``realtime`` is true, sleeps so frame ``i`` is returned no
    earlier than its timestamp after the first ``recv()`` (a file then plays like a live input).
    """

    def __init__(self, uri: str, nominal_fps: float | None, realtime: bool) -> None:
        self.uri = uri
        self.nominal_fps = nominal_fps
        self.realtime = realtime
        self._index = 0
        self._first_timestamp: float | None = None
        self._started_at: float | None = None  # monotonic clock at the first frame, for pacing
        self._closed = False
        self._ended = False
        # One thread at a time in _read/_release: the libraries are not safe for concurrent use of
        # one handle. A threading lock (not an anyio limiter) because a cancelled recv() abandons
        # its thread, which keeps running and must still hold the handle until it finishes.
        self._handle_lock = threading.Lock()

    @abstractmethod
    def _read(self) -> tuple[float, np.ndarray] | None:
        """Blocking: the next (timestamp in seconds, uint8 [H, W, 3] RGB), or None at the end."""

    @abstractmethod
    def _release(self) -> None:
        """Blocking: free the device or file."""

    def _interrupt(self) -> None:
        """Called by ``close()`` before it waits: make a ``_read`` that waits on a live input
        return soon (None). Sources whose reads always finish quickly need not override it."""

    async def recv(self) -> VideoFrame:
        if self._closed:
            raise EndOfStream(f"{self.uri} is closed")
        if self._ended:
            raise EndOfStream(self.uri)
        try:
            item = await anyio.to_thread.run_sync(self._locked, self._read, abandon_on_cancel=True)
        except EndOfStream:
            raise
        except Exception as err:  # one clear line for the user, whatever the library raised
            raise _as_user_error(err, self.uri) from err
        if item is None:
            self._ended = True
            raise EndOfStream(self.uri)
        timestamp, rgb = item
        if self._first_timestamp is None:
            self._first_timestamp = timestamp
            self._started_at = time.monotonic()
        relative = max(0.0, timestamp - self._first_timestamp)
        if self.realtime:
            delay = self._started_at + relative - time.monotonic()
            if delay > 0:
                await anyio.sleep(delay)
        frame = VideoFrame(index=self._index, timestamp=relative, rgb=rgb)
        self._index += 1
        return frame

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._interrupt()
        # The lock makes this wait for a read still running (even an abandoned one).
        await anyio.to_thread.run_sync(self._locked, self._release)

    def _locked(self, function):
        with self._handle_lock:
            return function()


class ThreadedSink(Sink):
    """Base for sinks that write in their own thread behind a bounded drop-oldest queue.

    Subclasses implement ``_write(frame)`` and ``_finalise()`` (both blocking, both called in the
    writer thread, never concurrently). An error in the writer stops it; the next ``send()`` or
    ``close()`` raises it as one line.

    Subclasses set up their own state first and call ``super().__init__`` last: it starts the
    writer thread.

    Args:
        uri: the URI it was opened from.
        queue_size: frames that may wait; when full, the oldest waiting frame is dropped.
    """

    def __init__(self, uri: str, queue_size: int = DEFAULT_SINK_QUEUE) -> None:
        if queue_size < 1:
            raise BadInputError(f"sink queue size must be >= 1, got {queue_size}")
        self.uri = uri
        self.dropped = 0
        self.sent = 0  # frames the writer finished
        self._queue: collections.deque[DepthFrame] = collections.deque()
        self._queue_size = queue_size
        self._wake = threading.Condition()
        self._closing = False
        self._closed = False
        self._writing = False  # a frame has left the queue but is not written yet
        self._error: RollingDepthError | None = None
        self._thread = threading.Thread(target=self._run, name=f"sink {uri}", daemon=True)
        self._thread.start()

    @abstractmethod
    def _write(self, frame: DepthFrame) -> None:
        """Blocking: encode and deliver one frame."""

    @abstractmethod
    def _finalise(self) -> None:
        """Blocking: flush and release (called once, after the last ``_write``)."""

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    async def send(self, frame: DepthFrame) -> None:
        self._raise_if_failed()
        if self._closing:
            raise RuntimeFailure(f"send to {self.uri} after close()")
        depth = frame.depth
        if getattr(depth, "ndim", 0) != 2:
            raise BadInputError(f"{self.uri}: depth must be a float [H, W] array in [0, 1], got shape {getattr(depth, 'shape', None)}")
        with self._wake:
            if len(self._queue) >= self._queue_size:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append(frame)
            self._wake.notify()

    def _run(self) -> None:
        try:
            while True:
                with self._wake:
                    while not self._queue and not self._closing:
                        self._wake.wait()
                    if not self._queue:  # closing and drained
                        break
                    frame = self._queue.popleft()
                    self._writing = True
                self._write(frame)
                with self._wake:
                    self.sent += 1
                    self._writing = False
                    self._wake.notify_all()  # wakes lossless senders waiting for room
        except BaseException as err:  # noqa: BLE001 - reported to the caller as one line
            self._error = _as_user_error(err, self.uri)
            with self._wake:
                self._queue.clear()
                self._writing = False
                self._wake.notify_all()
        finally:
            try:
                self._finalise()
            except BaseException as err:  # noqa: BLE001
                if self._error is None:
                    self._error = _as_user_error(err, self.uri)

    buffered = True

    def wait_for_room(self, limit: int, timeout: float) -> bool:
        """Blocking: wait until fewer than ``limit`` frames are unwritten (queued or being written).

        For lossless senders (``--no-drop``) that must not make the sink drop. Returns False when
        ``timeout`` seconds pass first (a hung writer), True otherwise (also when the writer failed:
        the next ``send()`` reports that).
        """
        with self._wake:
            return self._wake.wait_for(
                lambda: len(self._queue) + self._writing < limit or self._error is not None or self._closing,
                timeout,
            )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._wake:
            self._closing = True
            self._wake.notify()
        await anyio.to_thread.run_sync(self._thread.join)
        self._raise_if_failed()
