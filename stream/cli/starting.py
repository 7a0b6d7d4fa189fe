"""The first line of ``rdstream run``, ``file`` and ``rig``: said at once, before torch loads.

Loading torch and the model takes seconds (longer on a first run); a person at a terminal should
not wonder whether anything happened. The line is for a terminal only: logs and scripts reading
stderr keep the rule that a bad input is exactly one line (the checks that need torch come later).
"""

from __future__ import annotations

import sys


def say_starting(command: str, what: str = "") -> None:
    """``rdstream COMMAND: starting[ WHAT]; loading torch and the model ...`` on stderr, when it
    is a terminal; ``what`` e.g. '3 streams'."""
    stream = sys.stderr
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return
    detail = f" {what}" if what else ""
    stream.write(f"rdstream {command}: starting{detail}; loading torch and the model "
                 "(a few seconds, longer the first time)...\n")
    stream.flush()
