"""The base of every processing stage: receive, process, send on; measured the same way.

Stages are joined by bounded anyio memory object streams, so a slow stage holds back the ones
before it (back-pressure) instead of letting queues grow. ``StreamEnd`` travels the same path as
work: a stage that receives it flushes (``finish``), sends what the flush produced, passes the
``StreamEnd`` on and stops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from stream.stages.messages import StreamEnd
from stream.stats.stage_metrics import StageMetrics

# Between stages: one item waiting plus the one being worked on keeps latency low; model work
# is the bottleneck, so deeper queues would only add delay.
DEFAULT_QUEUE_SIZE = 1


def make_link(size: int = DEFAULT_QUEUE_SIZE) -> tuple[MemoryObjectSendStream, MemoryObjectReceiveStream]:
    """A bounded stream between two stages."""
    return anyio.create_memory_object_stream(max_buffer_size=size)


class Stage:
    """Subclasses implement ``process`` (one item -> zero or more items) and optionally ``finish``.

    Time spent in ``process``/``finish`` counts as busy time; time waiting to receive or to send
    (back-pressure) does not.
    """

    name = "stage"

    def __init__(self) -> None:
        self.metrics = StageMetrics(self.name)

    async def process(self, item: object) -> Sequence[object]:
        raise NotImplementedError

    async def finish(self, end: StreamEnd) -> Sequence[object]:
        """Flush held state at the end of the stream; the default holds nothing."""
        return ()

    async def run(self, receive: ObjectReceiveStream, send: ObjectSendStream | None) -> None:
        """Process items until ``StreamEnd`` (or the input closes), then close ``send``."""
        self.metrics.input = receive
        try:
            async with receive:
                async for item in receive:
                    if isinstance(item, StreamEnd):
                        await self._emit(send, await self._timed(self.finish(item), count_in=False))
                        if send is not None:
                            await send.send(item)
                        return
                    await self._emit(send, await self._timed(self.process(item), count_in=True))
        finally:
            if send is not None:
                await send.aclose()

    async def _timed(self, work, count_in: bool) -> Sequence[object]:
        start = time.perf_counter()
        try:
            return await work
        finally:
            self.metrics.busy_s += time.perf_counter() - start
            if count_in:
                self.metrics.items_in += 1

    async def _emit(self, send: ObjectSendStream | None, items: Sequence[object]) -> None:
        for out in items:
            self.metrics.items_out += 1
            if send is not None:
                await send.send(out)
