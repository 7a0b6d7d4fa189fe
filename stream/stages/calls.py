"""Calling source and sink methods that may be coroutines or blocking functions.

Blocking calls (a decoder, an encoder, a network send) go to a worker thread so the event loop
keeps receiving frames while they run.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import anyio


async def call_off_loop(fn: Callable[..., Any], *args: Any, abandon_on_cancel: bool = False,
                        limiter: anyio.CapacityLimiter | None = None) -> Any:
    """Await ``fn(*args)`` if it is a coroutine function, otherwise run it in a worker thread.

    abandon_on_cancel: let a cancelled caller stop waiting for a blocking call (used for a
    source's ``recv``, which may wait for a frame that never comes).
    """
    if inspect.iscoroutinefunction(fn):
        return await fn(*args)
    return await anyio.to_thread.run_sync(lambda: fn(*args), abandon_on_cancel=abandon_on_cancel, limiter=limiter)
