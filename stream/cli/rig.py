"""``rdstream rig RIG.toml``: several streams (cameras) through one loaded model.

The file and its checks are stream.cli.rig_file (no torch); the job is stream.cli.rig_job, imported
only once the whole file is checked, so a bad rig file is answered at once.
"""

from __future__ import annotations

from typing import Optional

import typer

from stream.cli.argv import default_checkpoint
from stream.cli.help_format import PANEL_MONITORING


def rig_command(
    rig_file: str = typer.Argument(..., metavar="RIG.toml", help="the rig file: a [model] table and one [[stream]] table per camera (see docs/rig.md)"),
    status: Optional[bool] = typer.Option(None, "--status/--no-status", help="a status line per stream; default: on when stderr is a terminal", rich_help_panel=PANEL_MONITORING),
    monitor: Optional[str] = typer.Option(None, "--monitor", metavar="[HOST:]PORT", help="serve one monitor page for every stream (pick one at the top), /metrics (a stream label on every series) and /status.json on TCP PORT (127.0.0.1) or HOST:PORT; default: [rig] monitor", rich_help_panel=PANEL_MONITORING),
    monitor_token: Optional[str] = typer.Option(None, "--monitor-token", metavar="TOKEN", help="token the monitor's controls need (and its reads, beyond loopback); 'new' = make one and print it once; required for a HOST other than loopback; default: [rig] monitor_token", rich_help_panel=PANEL_MONITORING),
) -> int:
    """Several cameras, one model: each [[stream]] of RIG.toml runs as its own node (Ctrl-C stops all)."""
    from stream.cli.rig_file import read_rig

    spec = read_rig(rig_file, default_checkpoint())  # the whole file, before torch loads
    if status is not None:
        spec.status = status
    if monitor is not None or monitor_token is not None:
        from stream.monitor.endpoint import check_monitor

        spec.monitor = check_monitor(monitor, monitor_token)
    from stream.cli.starting import say_starting

    say_starting("rig", f"{len(spec.streams)} streams")
    from stream.cli.rig_job import run_rig

    return run_rig(spec)
