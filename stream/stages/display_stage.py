"""The display stage: aligned depth -> DepthFrame in [0, 1] for the sinks, through a display normaliser.

Live commands (``NodeCommand``: display range, colour map, pause) wait in
``stream.stages.live_controls.LiveControls``, the node's command hook, and are applied here between two
frames, so each one takes effect from the next output frame on and every sink sees the change on
the same frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from io_adapters.frames import DepthFrame
from stream.stages.display_normalizer import (DisplayNormalizer, FixedRangeNormalizer, RunningRangeNormalizer,
                                       WindowRangeNormalizer)
from stream.stages.live_controls import LiveControls
from stream.stages.messages import AlignedFrame, NodeCommand, OutputFrame
from stream.stages.stage import Stage

# Reports kept for the stats sampler: a few more than can be in flight between here and the sinks.
_RECENT_REPORTS = 16


@dataclass(frozen=True)
class FrameReport:
    """What the node reports about one output frame (NDI metadata and ``--stats-json``).

    sequence: 0-based count of frames this stage emitted; index, timestamp: the source frame's;
    near, far: the display range (aligned depth units) or None; received_at: perf_counter at capture.
    """

    sequence: int
    index: int
    timestamp: float
    near: float | None
    far: float | None
    received_at: float
    keyframe: bool | None = None  # --fill: the frame's own model depth or carried (None without --fill)
    depth_age_ms: float | None = None


class DisplayStage(Stage):
    """AlignedFrame -> OutputFrame; colour maps and bit depths are the sinks' formats.

    keep_colour: pass the input frame on (only sinks with an rgbd layout need it).
    controls: where live commands wait; None = no live control.
    """

    name = "display"

    def __init__(self, normalizer: DisplayNormalizer, keep_colour: bool = True,
                 controls: LiveControls | None = None, mark: str | None = None) -> None:
        super().__init__()
        self.mark = mark  # burnt into colour outputs (DepthFrame.mark), e.g. for the random test model
        self.normalizer = normalizer
        self.keep_colour = keep_colour
        self.controls = controls
        self.cmap: str | None = None
        self.paused = False
        self.held: DepthFrame | None = None  # the frame shown while paused
        self.recent: deque[FrameReport] = deque(maxlen=_RECENT_REPORTS)
        self._sequence = 0
        # The monitor's PreviewTap (stream.monitor.preview), or None: gets references, does no work.
        self.preview = None

    def apply(self, command: NodeCommand) -> None:
        """Change the state the next frame is made with (commands are validated by their sender)."""
        if command.kind == "normalize/fixed":
            near, far = command.args
            self.normalizer = FixedRangeNormalizer(near=near, far=far)
        elif command.kind == "normalize/running":
            self.normalizer = RunningRangeNormalizer()
        elif command.kind == "normalize/window":
            self.normalizer = WindowRangeNormalizer(frames=command.args[0])
        elif command.kind == "cmap":
            self.cmap = command.args[0]
        elif command.kind == "pause":
            self.paused = bool(command.args[0])
        else:
            raise ValueError(f"the display stage does not apply {command.kind!r} commands")

    async def process(self, item: AlignedFrame) -> Sequence[OutputFrame]:
        applied = self.controls.take() if self.controls is not None else []
        for command in applied:
            self.apply(command)
        timing = item.timing
        fill = {"keyframe": item.fill.keyframe, "depth_age_ms": item.fill.depth_age_ms} if item.fill else {}
        if self.paused and self.held is not None:
            # Hold the picture, keep the stream's own timing: sinks go on receiving one frame per
            # processed frame, at the rate they do when live (docs/live_io.md).
            frame = DepthFrame(index=timing.source_index, timestamp=timing.timestamp, depth=self.held.depth,
                               rgb=self.held.rgb, received_at=timing.received_at,
                               display_range=self.held.display_range, cmap=self.cmap, mark=self.mark, **fill)
        else:
            depth = self.normalizer(item.depth)
            current = self.normalizer.current_range
            frame = DepthFrame(index=timing.source_index, timestamp=timing.timestamp, depth=depth,
                               rgb=item.rgb if self.keep_colour else None, received_at=timing.received_at,
                               display_range=None if current is None else (current.near, current.far),
                               cmap=self.cmap, mark=self.mark, **fill)
            self.held = frame
        near, far = frame.display_range or (None, None)
        self.recent.append(FrameReport(self._sequence, timing.source_index, timing.timestamp, near, far,
                                       timing.received_at, **fill))
        self._sequence += 1
        if self.preview is not None:
            self.preview.offer(timing.source_index, item.rgb, frame.depth, self.cmap, self.mark)
        for command in applied:
            self.controls.applied(command, timing.source_index)
        return [OutputFrame(timing=timing, frame=frame, source_rgb=item.source_rgb if self.keep_colour else None)]

    def report_for(self, sequence: int) -> FrameReport | None:
        """The report of the ``sequence``-th emitted frame, if still kept."""
        for report in reversed(self.recent):
            if report.sequence == sequence:
                return report
        return None
