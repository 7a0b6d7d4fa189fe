"""Dedicated threads for torch work: one for the model, one for the aligner.

Torch on the CPU runs its parallel ops on an OpenMP thread team that belongs to the calling
thread. Once more OpenMP threads exist than CPU cores (two teams of two on a 2-core machine),
OpenMP stops spin-waiting between ops and the tiny model's many small ops got 1.7-2x slower
(measured: node at 50-60 % of the same steps in a plain loop). So:
- every model call runs on ONE thread, and the model should be loaded on it too
  (``ModelThread.call(load_rolling_depth, ...)``): the thread that first runs torch owns the team;
- the aligner's thread runs torch single-threaded (``torch_threads=1``), so it adds no team.
On GPUs this also keeps one device context per thread.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import anyio


def _limit_torch_threads(count: int) -> None:
    import torch

    torch.set_num_threads(count)  # per calling thread with OpenMP: the model thread keeps its own


class ModelThread:
    """Runs blocking callables one at a time on a single thread.

    ``call(fn, *args)`` blocks (setup, e.g. loading the model on this thread);
    ``await run(fn, *args)`` waits without blocking the event loop.
    torch_threads: torch intra-op threads on this thread (None = torch's default).
    """

    def __init__(self, name: str = "rdstream-model", torch_threads: int | None = None) -> None:
        initializer = (lambda: _limit_torch_threads(torch_threads)) if torch_threads else None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=initializer)
        self.abandoned = False  # see abandon()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self._executor.submit(fn, *args, **kwargs).result()

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        future = self._executor.submit(fn, *args)
        # The waiting happens in an anyio worker thread that only blocks (no compute), so the
        # event loop stays free. A cancelled caller still waits for the call to finish (the
        # model's state is the call's until then), unless the thread was abandoned.
        try:
            return await anyio.to_thread.run_sync(future.result, abandon_on_cancel=True)
        except anyio.get_cancelled_exc_class():
            if not self.abandoned:
                with anyio.CancelScope(shield=True):
                    await anyio.to_thread.run_sync(wait, [future])
            raise

    def abandon(self) -> None:
        """Stop waiting for the call in progress (a compile that may take minutes): cancelled
        callers return at once and ``close`` does not wait. The process must then end without
        waiting (``stop_signals.end_without_waiting``), as Python would join the thread at exit."""
        self.abandoned = True

    def close(self) -> None:
        self._executor.shutdown(wait=not self.abandoned, cancel_futures=self.abandoned)
