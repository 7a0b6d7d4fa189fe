"""Preprocess and VAE-encode each kept frame exactly once (in a worker thread)."""

from __future__ import annotations

from collections.abc import Sequence

import anyio

from stream.depth_steps import DepthSteps
from stream.messages import CapturedFrame, EncodedFrame
from stream.stage import Stage


class EncodeStage(Stage):
    """CapturedFrame -> EncodedFrame (display rgb at processing size and its RGB latent)."""

    name = "encode"

    def __init__(self, steps: DepthSteps, model_limiter: anyio.CapacityLimiter) -> None:
        super().__init__()
        self.steps = steps
        self.model_limiter = model_limiter

    async def process(self, item: CapturedFrame) -> Sequence[EncodedFrame]:
        rgb, latent = await anyio.to_thread.run_sync(self.steps.encode, item.rgb, limiter=self.model_limiter)
        return [EncodedFrame(timing=item.timing, rgb=rgb, latent=latent)]
