"""The progress report of a long job (``rdstream file``, ``rdstream dev evaluate``): a bar per
stage on a terminal, plain lines elsewhere."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from pipeline.offline import ProgressCallback


class StageProgress:
    """A rich progress bar per stage; the pipeline reports (stage, advance, total)."""

    def __init__(self, progress: Progress, label: str):
        self.progress, self.label, self.tasks = progress, label, {}

    def __call__(self, stage: str, advance: int, total: int) -> None:
        if stage not in self.tasks:
            self.tasks[stage] = self.progress.add_task(f"{self.label} {stage}", total=total)
        self.progress.update(self.tasks[stage], advance=advance, total=total)


class PlainProgress:
    """Progress as plain lines, for when stderr is not a terminal (a script, TouchDesigner's Python,
    a log file): one line per stage when it starts and ends, and at most one every ``interval_s``
    in between, with frames done, elapsed time and an estimate of the time left."""

    def __init__(self, console: Console, label: str, interval_s: float = 10.0, clock=time.monotonic):
        self.console, self.label, self.interval_s, self.clock = console, label, interval_s, clock
        self.done: dict[str, int] = {}
        self.started: dict[str, float] = {}
        self.last_line = 0.0

    def __call__(self, stage: str, advance: int, total: int) -> None:
        now = self.clock()
        first = stage not in self.done
        if first:
            self.done[stage], self.started[stage] = 0, now
        self.done[stage] += advance
        finished = total and self.done[stage] >= total
        if first or finished or now - self.last_line >= self.interval_s:
            self.last_line = now
            self.console.print(self.line(stage, total, now), highlight=False, markup=False, soft_wrap=True)

    def line(self, stage: str, total: int, now: float) -> str:
        done, elapsed = self.done[stage], now - self.started[stage]
        text = f"{self.label} {stage}: {done}/{total or '?'}, {elapsed:.0f} s elapsed"
        if total and 0 < done < total and elapsed >= 1:
            text += f", about {elapsed / done * (total - done):.0f} s left"
        return text


@contextmanager
def stage_progress(console: Console, label: str, keep: bool = False) -> Iterator[ProgressCallback]:
    """The progress report (stage, advance, total) of a long job: a bar per stage on a terminal
    (left on screen with ``keep``); elsewhere plain lines (a bar would print nothing until the end)."""
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=not keep, disable=not console.is_terminal,
    )
    with progress:
        yield StageProgress(progress, label) if console.is_terminal else PlainProgress(console, label)
