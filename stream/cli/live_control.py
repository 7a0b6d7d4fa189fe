"""What steers and shows a live job (stream.cli.live_job): its OSC control and its monitor page.

``rdstream run`` (one stream, ``names`` None) keeps its OSC addresses (/rdstream/speed etc.,
``OscControl``) and its page as it was; a rig's streams are steered by name (/rdstream/NAME/...,
``RigOscControl``) and share one page with a stream picker (``stream.monitor.server.Monitor``).
"""

from __future__ import annotations

from collections.abc import Callable

from rich.console import Console


def job_osc(listen, status, names: list[str] | None, say: Callable[[str], None], monitor):
    """(control or None without OSC, acknowledge(name, command, source_index)): an applied command is
    acknowledged over OSC and on the monitor page."""
    control = None
    if listen is not None or status is not None:
        if names is None:
            from stream.control.osc_control import OscControl

            control = OscControl(listen, status, say)
        else:
            from stream.control.rig_osc import RigOscControl

            control = RigOscControl(names, listen, status, say)

    def acknowledge(name: str, command, index) -> None:
        if control is not None:
            control.acknowledge(command, index) if names is None else control.acknowledge_stream(name, command, index)
        if monitor is not None:
            monitor.acknowledge(command, index, name)

    return control, acknowledge


def job_monitor(endpoint, started: str, names: list[str] | None, console: Console):
    """The job's Monitor (stream.monitor) on ``endpoint``, or None without one; it prints its address once."""
    if endpoint is None:
        return None
    from stream.monitor.server import Monitor

    return Monitor(endpoint, settings=started, announce=sayer(console), streams=names)


def sayer(console: Console, monitor=None) -> Callable[[str], None]:
    """'rdstream: LINE' on stderr (and among the monitor page's messages)."""
    def say(line: str) -> None:
        console.print(f"rdstream: {line}", highlight=False, markup=False, soft_wrap=True)
        if monitor is not None:
            monitor.warn(line)
    return say
