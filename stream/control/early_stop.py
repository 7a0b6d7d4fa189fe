"""A stop signal that came during start-up, remembered until the live run's own handling takes over.

During start-up (imports, the model load) Ctrl-C raises KeyboardInterrupt and SIGTERM/SIGHUP raise
``stream.cli.StopRequested``, which end the command with one line. A library that catches every
exception while it imports or loads (a bare ``except:``) can swallow that exception, and the run
would then start as if no one had asked it to stop. So the CLI's handlers also ``record`` the
signal here, and the live run's signal watcher (``stream.control.stop_signals.watch_stop_signals``) acts on
a recorded one as soon as it starts. No imports: the CLI installs its handlers before anything slow.
"""

from __future__ import annotations

_recorded: str | None = None


def record(name: str) -> None:
    """A stop signal named ``name`` (e.g. 'SIGINT') arrived before the live run watched signals."""
    global _recorded
    if _recorded is None:
        _recorded = name


def take() -> str | None:
    """The recorded signal's name, once (None when there was none); clears the record."""
    global _recorded
    name, _recorded = _recorded, None
    return name


def clear() -> None:
    """Forget any record (a new command starts: tests call the CLI many times in one process)."""
    global _recorded
    _recorded = None
