"""Facts about the machine a benchmark ran on, on every OS."""

from __future__ import annotations

import os


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded; None where the OS has none (Windows)."""
    if hasattr(os, "getloadavg"):
        return [round(value, 2) for value in os.getloadavg()]
    return None


def print_report(report: dict, started: float) -> int:
    """Print a benchmark's ``report`` as one JSON document on stdout, with the load average at its end
    (``report["machine"]["load_average_at_end"]``) and its total seconds since ``started``
    (``time.perf_counter()``); returns 0, the benchmark's exit code."""
    import json
    import sys
    import time

    report.setdefault("machine", {})["load_average_at_end"] = load_average()
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0
