"""A sink that fails part-way, for the node's and the rig's handling of a broken output."""

from __future__ import annotations

from bench.support.stream_doubles import RecordingSink
from io_adapters.frames import DepthFrame


class FailingSink(RecordingSink):
    """Raises on the ``fail_at``-th send (0-based) and on every send after."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at
        self.attempts = 0

    def send(self, frame: DepthFrame) -> None:
        self.attempts += 1
        if self.attempts > self.fail_at:
            raise OSError("disk full")
        super().send(frame)
