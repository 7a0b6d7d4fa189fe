"""Live commands waiting for the next frame: the node's command hook.

OSC, the monitor page and the rig submit ``NodeCommand``s (display range, colour map, pause) here
at any time; the display stage takes them between two frames, so each one takes effect from the
next output frame on and every sink sees the change on the same frame.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from stream.stages.messages import NodeCommand


class LiveControls:
    """The node's command hook: commands submitted at any time, applied before the next frame.

    on_applied(command, source_index) is called once a command took effect; source_index is the
    first output frame it applies to (None when it applies without a frame, e.g. ``stop``).
    """

    def __init__(self, on_applied: Callable[[NodeCommand, int | None], None] | None = None) -> None:
        self.on_applied = on_applied
        self._pending: deque[NodeCommand] = deque()

    def submit(self, command: NodeCommand) -> None:
        self._pending.append(command)

    def take(self) -> list[NodeCommand]:
        if not self._pending:  # the usual case, every frame
            return []
        taken = list(self._pending)
        self._pending.clear()
        return taken

    def applied(self, command: NodeCommand, source_index: int | None) -> None:
        if self.on_applied is not None:
            self.on_applied(command, source_index)
