"""Events per second from the times of the events themselves (frames in, frames out).

Counting events per 1-second sample flips between 0 and 1 below 1 fps (0.5 fps shows 0.0, 1.0,
0.0, ...). This estimate uses the spacing of the recent events instead: steady at any rate, and
falling smoothly towards 0 once the events stop.
"""

from __future__ import annotations

import time
from collections import deque

# Events older than this are forgotten (the last two are always kept, so a rate of one event every
# minute is still known); long enough to hold a few events at 0.3 fps.
RATE_WINDOW_S = 10.0


class RateMeter:
    """``tick()`` at each event; ``per_second()`` is the recent rate (0.0 before two events)."""

    def __init__(self, window_s: float = RATE_WINDOW_S, max_events: int = 1024) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)

    def tick(self, now: float | None = None) -> None:
        self._times.append(time.perf_counter() if now is None else now)

    def per_second(self, now: float | None = None) -> float:
        """(n - 1) events over the span of the last n, and never more than n over the time since
        the first of them: the second term takes over when no event has come for longer than
        the usual gap, so a stalled stream reads as slowing down, not as its old rate."""
        now = time.perf_counter() if now is None else now
        times = self._times
        while len(times) > 2 and times[0] < now - self.window_s:
            times.popleft()
        if len(times) < 2:
            return 0.0
        count = len(times)
        span = times[-1] - times[0]
        since_first = now - times[0]
        if span <= 0 or since_first <= 0:
            return 0.0
        return min((count - 1) / span, count / since_first)
