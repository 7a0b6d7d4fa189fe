"""The counters the stage base keeps for every stage: busy time, items in and out, the queue at its input.

Here rather than beside the stage base so the stats (``stream_stats``, the monitor) read them
without importing the stages.
"""

from __future__ import annotations

from dataclasses import dataclass

from anyio.abc import ObjectReceiveStream
from anyio.streams.memory import MemoryObjectReceiveStream

from stream.stats.rate_meter import RateMeter


@dataclass(frozen=True)
class StageSnapshot:
    """One stage's counters at a moment: busy seconds, items in/out, items waiting at its input."""

    name: str
    busy_s: float
    items_in: int
    items_out: int
    queue: int

    def as_dict(self) -> dict:
        return {"busy_s": round(self.busy_s, 4), "in": self.items_in, "out": self.items_out, "queue": self.queue}


class StageMetrics:
    """Counters kept by the stage base, so every stage is measured alike."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.busy_s = 0.0
        self.items_in = 0
        self.items_out = 0
        self.input: ObjectReceiveStream | None = None
        self.arrivals = RateMeter()  # items_in per second, ticked by the stage that counts them

    def queue_depth(self) -> int:
        if isinstance(self.input, MemoryObjectReceiveStream):
            return self.input.statistics().current_buffer_used
        return 0

    def snapshot(self) -> StageSnapshot:
        return StageSnapshot(self.name, self.busy_s, self.items_in, self.items_out, self.queue_depth())
