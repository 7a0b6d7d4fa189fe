"""Preprocess and VAE-encode each kept frame exactly once (in a worker thread)."""

from __future__ import annotations

from collections.abc import Sequence

from stream.depth_steps import DepthSteps
from stream.model_thread import ModelThread
from stream.messages import CapturedFrame, EncodedFrame
from stream.stage import Stage


class EncodeStage(Stage):
    """CapturedFrame -> EncodedFrame (display rgb at processing size and its RGB latent)."""

    name = "encode"

    def __init__(self, steps: DepthSteps, model_thread: ModelThread) -> None:
        super().__init__()
        self.steps = steps
        self.model_thread = model_thread

    async def process(self, item: CapturedFrame) -> Sequence[EncodedFrame]:
        rgb, latent = await self.model_thread.run(self.steps.encode, item.rgb)
        return [EncodedFrame(timing=item.timing, rgb=rgb, latent=latent)]
