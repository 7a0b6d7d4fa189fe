"""Temporally stable display normalisation: aligned depth -> DepthFrame in [0, 1] for the sinks."""

from __future__ import annotations

from collections.abc import Sequence

from io_adapters.frames import DepthFrame
from stream.display_normalizer import DisplayNormalizer
from stream.messages import AlignedFrame, OutputFrame
from stream.stage import Stage


class DisplayStage(Stage):
    """AlignedFrame -> OutputFrame; colour maps and bit depths are the sinks' formats."""

    name = "display"

    def __init__(self, normalizer: DisplayNormalizer) -> None:
        super().__init__()
        self.normalizer = normalizer

    async def process(self, item: AlignedFrame) -> Sequence[OutputFrame]:
        frame = DepthFrame(index=item.timing.source_index, timestamp=item.timing.timestamp,
                           depth=self.normalizer(item.depth), rgb=item.rgb)
        return [OutputFrame(timing=item.timing, frame=frame)]
