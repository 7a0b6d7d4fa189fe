"""OSC for a rig (``[rig] osc`` / ``osc_status``): the addresses of stream.control.osc_control, per stream.

``/rdstream/NAME/normalize/fixed NEAR FAR`` (and every other command) steers stream NAME only; the
single-stream address ``/rdstream/normalize/fixed ...`` steers every stream (so ``/rdstream/stop``
stops the rig; ``/rdstream/NAME/speed RUNG`` changes one stream's strides and snippet length, keeping
its own ``snip_len``, ``/rdstream/speed RUNG`` every stream's). The status target gets ``/rdstream/NAME/status ...`` per stream once a second and
``/rdstream/NAME/ack ADDRESS SOURCE_INDEX ARGS...`` when a command takes effect in stream NAME; a
refused command is answered with ``/rdstream/error ADDRESS REASON`` (ADDRESS as sent, name included).
Everything else (rate limits, malformed messages, time tags) is ``OscControl``'s.
"""

from __future__ import annotations

from collections.abc import Callable

from stream.stages.messages import NodeCommand
from stream.control.osc_commands import OSC_PREFIX
from stream.control.osc_control import ACK_ADDRESS, STATUS_ADDRESS, OscControl
from stream.stats.stream_stats import NodeStats


class _Renamed:
    """An OSC message with the stream's name taken out of its address (``shown_address``: as sent,
    for a refusal's reply)."""

    def __init__(self, address: str, params, shown_address: str) -> None:
        self.address, self.params, self.shown_address = address, params, shown_address


class RigOscControl(OscControl):
    """``OscControl`` for several named streams; ``serve``'s command callable takes (name or None, command)."""

    def __init__(self, names: list[str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # longest first, so a name that begins with another's still finds its own stream
        self.names = sorted(names, key=len, reverse=True)

    def _handle_message(self, message, due: float, command: Callable, origin: str = "") -> None:
        address = message.address if isinstance(message.address, str) else ""
        for name in self.names:
            prefix = f"{OSC_PREFIX}{name}/"
            if address.startswith(prefix):
                renamed = _Renamed(OSC_PREFIX + address[len(prefix):], message.params, address)
                return super()._handle_message(renamed, due, lambda parsed: command(name, parsed), origin)
        return super()._handle_message(message, due, lambda parsed: command(None, parsed), origin)

    def acknowledge_stream(self, name: str, command: NodeCommand, source_index: int | None) -> None:
        """What ``acknowledge`` sends, at ``/rdstream/NAME/ack``."""
        self.acknowledge(command, source_index, f"{OSC_PREFIX}{name}/{ACK_ADDRESS[len(OSC_PREFIX):]}")

    def send_stream_status(self, name: str, stats: NodeStats) -> None:
        """What ``send_status`` sends, at ``/rdstream/NAME/status``."""
        self.send_status(stats, f"{OSC_PREFIX}{name}/{STATUS_ADDRESS[len(OSC_PREFIX):]}")
