"""Preprocess and VAE-encode each kept frame exactly once (in a worker thread)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pipeline.preprocess import describe_sizes

from stream.model.depth_steps import DepthSteps
from stream.model.model_thread import ModelThread
from stream.stages.messages import CapturedFrame, EncodedFrame
from stream.stages.stage import Stage


class EncodeStage(Stage):
    """CapturedFrame -> EncodedFrame (display rgb at processing size and its RGB latent)."""

    name = "encode"

    def __init__(self, steps: DepthSteps, model_thread: ModelThread,
                 report: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self.steps = steps
        self.model_thread = model_thread
        self.report = report
        self._sizes_said = False

    async def process(self, item: CapturedFrame) -> Sequence[EncodedFrame]:
        if getattr(self.steps, "takes_frame_index", False):  # the oracle model knows frames by index
            rgb, latent = await self.model_thread.run(self.steps.encode, item.rgb, item.timing.source_index)
        else:
            rgb, latent = await self.model_thread.run(self.steps.encode, item.rgb)
        if not self._sizes_said and self.report is not None:
            # the processing size is fixed by the first frame: say it once (upscaling is easy to miss)
            self._sizes_said = True
            self.report(describe_sizes("input", item.rgb.shape[:2], rgb.shape[:2]))
        return [EncodedFrame(timing=item.timing, rgb=rgb, latent=latent)]
