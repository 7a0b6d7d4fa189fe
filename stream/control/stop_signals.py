"""The signals that stop a live run, and one way to watch them on every OS.

Ctrl-C (SIGINT), SIGTERM (service managers) and SIGHUP (the terminal closed, ssh dropped) stop a
run; Windows has no SIGHUP but has Ctrl-Break (SIGBREAK). ``watch_stop_signals`` calls its
callback on the event loop for each one, with the signal's name (so a run can say who stopped it), through the loop's own signal handlers where it has them
(POSIX) and through ``signal.signal`` where it has none (Windows); the node and the rig both use it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from contextlib import ExitStack

import anyio

from stream.control import early_stop
from stream.control.early_stop import signal_name

STOP_SIGNALS = tuple(s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None)
# Where the event loop has no signal handlers (Windows): Ctrl-Break stops like SIGTERM there.
_PLAIN_STOP_NAMES = ("SIGINT", "SIGTERM", "SIGBREAK")


async def watch_stop_signals(on_signal: Callable[[str], None]) -> None:
    """Call ``on_signal(NAME)`` (e.g. 'SIGTERM') on the event loop for every stop signal, until
    cancelled; first for one that came during start-up and was not acted on (stream.control.early_stop)."""
    with ExitStack() as stack:
        try:
            signals = stack.enter_context(anyio.open_signal_receiver(*STOP_SIGNALS))
        except NotImplementedError:  # Windows event loops have no signal handlers
            _act_on_early_stop(on_signal)
            await _watch_plainly(on_signal)
            return
        _act_on_early_stop(on_signal)
        async for signum in signals:
            on_signal(signal_name(signum))


def _act_on_early_stop(on_signal: Callable[[str], None]) -> None:
    name = early_stop.take()
    if name is not None:
        on_signal(name)


async def _watch_plainly(on_signal: Callable[[str], None]) -> None:
    """``signal.signal`` handlers that only schedule ``on_signal`` on the loop, the one safe thing a
    handler may do there; the previous handlers come back when the watch ends."""
    loop = asyncio.get_running_loop()
    previous = {}
    try:
        for name in _PLAIN_STOP_NAMES:
            if hasattr(signal, name):
                number = getattr(signal, name)
                previous[number] = signal.signal(
                    number, lambda signum, _frame: loop.call_soon_threadsafe(on_signal, signal_name(signum)))
    except ValueError:  # not the main thread: signals are not ours to manage
        pass
    try:
        await anyio.sleep_forever()
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


def ignore_further_stops() -> None:
    """After a stop signal ended the run: the process is ending, further stop signals change nothing."""
    for signum in STOP_SIGNALS:
        try:
            signal.signal(signum, signal.SIG_IGN)
        except ValueError:  # not the main thread: signals are not ours to manage
            return


def end_without_waiting(code: int) -> None:
    """After a stop, exit with ``code`` without waiting for work left running (a compile of
    ``--compile``: minutes on the CPU), which Python's normal exit would wait for (it joins threads,
    and torch's exit handlers wait for its compile workers). Only once the command has closed its
    outputs: nothing else runs after this (no ``atexit``, no ``finally``)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
