"""A stop signal that came during start-up, remembered until the live run's own handling takes over.

During start-up (imports, the model load) Ctrl-C raises KeyboardInterrupt and SIGTERM/SIGHUP raise
``stream.cli.StopRequested``, which end the command with one line. A library that catches every
exception while it imports or loads (a bare ``except:``) can swallow that exception, and the run
would then start as if no one had asked it to stop. So the CLI's handlers also ``record`` the
signal here, and the live run's signal watcher (``stream.control.stop_signals.watch_stop_signals``) acts on
a recorded one as soon as it starts. Light imports only: the CLI installs its handlers before
anything slow.

Inside the event loop an exception raised by a signal handler lands in whatever the loop was doing
(asyncio's own Ctrl-C handling is not installed there either, as the CLI's handler is in place): a
task stuck in a shielded wait then never ends and the run hangs. So while the loop starts, until the
watcher takes the signals, ``deferred`` makes a stop signal only ``record``ed.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager

#: Every signal that stops a command, where the OS has it (SIGHUP: POSIX; SIGBREAK, Ctrl-Break: Windows).
STOP_NAMES = ("SIGINT", "SIGTERM", "SIGHUP", "SIGBREAK")

_recorded: str | None = None
_seen = False  # any stop signal recorded since ``clear``, taken or not


def record(name: str) -> None:
    """A stop signal named ``name`` (e.g. 'SIGINT') arrived before the live run watched signals."""
    global _recorded, _seen
    _seen = True
    if _recorded is None:
        _recorded = name


def seen() -> bool:
    """Whether a stop signal was recorded since ``clear`` (taken since or not)."""
    return _seen


def take() -> str | None:
    """The recorded signal's name, once (None when there was none); clears the record."""
    global _recorded
    name, _recorded = _recorded, None
    return name


def clear() -> None:
    """Forget any record (a new command starts: tests call the CLI many times in one process)."""
    global _recorded, _seen
    _recorded, _seen = None, False


def signal_name(signum: int) -> str:
    """'SIGINT' for 2; the number itself for a signal Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def _record_only(signum, frame) -> None:
    record(signal_name(signum))


@contextmanager
def deferred() -> Iterator[None]:
    """Within: Ctrl-C, SIGTERM, SIGHUP (Ctrl-Break) are only recorded, for the live run's watcher to
    act on when it starts; a signal already ignored stays ignored. Afterwards the handlers from
    before come back, unless the run ignores further stops (``SIG_IGN``)."""
    previous = {}
    try:
        for name in STOP_NAMES:
            signum = getattr(signal, name, None)
            if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
                previous[signum] = signal.signal(signum, _record_only)
    except ValueError:  # not the main thread: signals are not ours to manage
        pass
    try:
        yield
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, handler)
