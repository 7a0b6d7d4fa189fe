"""A stop signal that came during start-up is acted on even when a library swallowed it (stream.control.early_stop)."""

from __future__ import annotations

import os
import signal
import sys

import anyio
import pytest

from stream.control import early_stop
from stream.control.stop_signals import watch_stop_signals
from tests.conftest import rdstream_in_process


def test_the_watcher_acts_first_on_a_stop_recorded_during_start_up():
    seen: list[str] = []

    async def main() -> None:
        with anyio.move_on_after(0.2):
            await watch_stop_signals(seen.append)

    early_stop.record("SIGTERM")
    early_stop.record("SIGINT")  # the first one is the one that asked
    anyio.run(main)
    assert seen == ["SIGTERM"]
    anyio.run(main)  # taken once: a later run is not stopped by it
    assert seen == ["SIGTERM"]


@pytest.mark.skipif(sys.platform == "win32", reason="sends itself a POSIX SIGINT")
def test_a_ctrl_c_that_a_library_swallowed_during_start_up_still_stops_the_run(monkeypatch, tiny_checkpoint, capsys):
    """Ctrl-C during the start-up raises KeyboardInterrupt; a library that catches everything while it
    loads would swallow it, and the run went on as if nobody had asked (seen on a loaded machine)."""
    import pipeline.checkpoint

    real = pipeline.checkpoint.resolve_device

    def swallowing_library(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between two bytecodes
                pass
        except BaseException:  # what such a library does
            pass
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline.checkpoint, "resolve_device", swallowing_library)
    code = rdstream_in_process("run", "--source", "test:?size=64x48&rate=30&frames=600", "--sink", "null:",
                               "-c", tiny_checkpoint, "--res", "64", "-d", "1", "--no-status")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "interrupted:" in err and "stopped by signal SIGINT" in err, err


@pytest.mark.skipif(sys.platform == "win32", reason="sends itself a POSIX SIGINT")
def test_a_ctrl_c_while_the_event_loop_starts_drains_the_run(monkeypatch, tiny_checkpoint, capsys):
    """Between the event loop's start and the rig's signal watcher, Ctrl-C raised KeyboardInterrupt
    inside the loop: the run ended without its drain and summary, or hung in a shielded wait (seen
    under load). It is now recorded there and the watcher drains the run as for any Ctrl-C."""
    from stream.rig import Rig

    real_run = Rig.run

    async def run_after_a_ctrl_c(self, *args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)
        await anyio.sleep(0.05)  # the handler runs here, before the watcher starts
        return await real_run(self, *args, **kwargs)

    monkeypatch.setattr(Rig, "run", run_after_a_ctrl_c)
    code = rdstream_in_process("run", "--source", "test:?size=64x48&rate=30&frames=600", "--sink", "null:",
                               "-c", tiny_checkpoint, "--res", "64", "-d", "1", "--no-status")
    err = capsys.readouterr().err
    assert code == 0, err
    assert "interrupted:" in err and "stopped by signal SIGINT" in err, err
