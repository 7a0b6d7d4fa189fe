"""One dedicated thread for all model work.

Torch on the CPU runs each call on an OpenMP thread team that belongs to the calling thread, and
a team keeps spinning for a while after its work. If model calls hop between the worker threads
of a pool, two teams spin against each other; on a 2-core machine that made the node's model
steps up to 3x slower than the same steps in a plain loop. Keeping every model call on one
thread keeps one team (on GPUs it also keeps one CUDA/MPS context per thread).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio


class ModelThread:
    """Runs blocking callables one at a time on a single thread; ``await run(fn, *args)``."""

    def __init__(self, name: str = "rdstream-model") -> None:
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        future = self._executor.submit(fn, *args)
        # The waiting happens in an anyio worker thread that only blocks (no compute), so the
        # event loop stays free; a cancelled caller still waits for the call to finish.
        return await anyio.to_thread.run_sync(future.result)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
