"""A token bucket: how many packets or requests a second get handled (OSC and the monitor page),
so a flood costs the node little."""

from __future__ import annotations

import time


class PacketBudget:
    """Token bucket: ``rate`` packets a second, bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
