"""OSC control and status for ``rdstream run --osc PORT --osc-status HOST:PORT`` (python-osc): the UDP
listener and the status sender. The addresses and what they mean: ``stream.control.osc_commands``.

Each command takes effect from the next output frame and is acknowledged on the status target
as ``/rdstream/ack ADDRESS SOURCE_INDEX ARGS...`` (SOURCE_INDEX: the first output frame it applies
to, -1 for ``stop``; ARGS as they were sent); a command refused is answered there at once as
``/rdstream/error ADDRESS REASON`` (at most MAX_ERROR_REPLIES_PER_S a second). A bundle time-tagged for later is applied at its time,
up to MAX_SCHEDULE_AHEAD_S ahead. ``--osc-status`` also gets ``/rdstream/status INPUT_FPS OUTPUT_FPS
LATENCY_P50_MS DROPPED NEAR FAR`` once a second (-1 for a latency not known yet, NaN for a range).

Nothing received can stop the node: a malformed message (unknown address, wrong argument count or
type, unknown colour map, a bad range, unparsable bytes, a packet over MAX_PACKET_BYTES) or any
failure handling one is ignored with one warning line (at most one line a second; the rest are
counted in it); a refused message is also answered with ``/rdstream/error``. Packets beyond
MAX_PACKETS_PER_S are dropped unparsed unless their address is one of ours (a byte test), so a flood costs the node little more than the kernel's receive work and
never hides a ``stop``.
"""

from __future__ import annotations

import errno
import logging
import math
import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import numpy as np
import pythonosc
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient

from io_adapters.encodings import colormap_lut
from pipeline.errors import BadInputError
from stream.control.host_port import parse_host_port
from stream.stages.messages import NodeCommand
from stream.control.osc_commands import OSC_PREFIX, is_control_packet, parse_command
from stream.control.packet_budget import PacketBudget
from stream.stats.stream_stats import NodeStats

STATUS_ADDRESS = "/rdstream/status"
ACK_ADDRESS = "/rdstream/ack"
ERROR_ADDRESS = "/rdstream/error"
# Real control messages are tens of bytes; anything this large is not for us.
MAX_PACKET_BYTES = 4096
# Far above what a patch sends (a fader at 60 fps is 60 a second), far below what costs frames.
MAX_PACKETS_PER_S = 500
_BURST = 100
_WARN_EVERY_S = 1.0
# Every refusal a patch makes by hand is answered; a flood of junk is not echoed at full rate.
MAX_ERROR_REPLIES_PER_S = 50
# What an error reply quotes of the address it refuses (a patch's addresses are short).
_SHOWN_ADDRESS_CHARS = 80
# A bundle time-tagged for later is applied at its time (the node's clock), up to this far ahead;
# further is more likely a wrong clock than a plan, and is ignored with a warning.
MAX_SCHEDULE_AHEAD_S = 60.0
# Commands waiting for their time tag at once (a bound on memory under a flood of bundles).
MAX_SCHEDULED = 64
# A time tag at most this far ahead counts as "now" (scheduling jitter, clocks a hair apart).
_DUE_NOW_S = 0.002


@dataclass(frozen=True)
class OscEndpoint:
    """A UDP host (an IP address or ``localhost``) and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str, option: str) -> OscEndpoint:
    """``PORT`` (on 127.0.0.1) or ``HOST:PORT`` -> OscEndpoint; BadInputError naming ``option``."""
    return OscEndpoint(*parse_host_port(text, option, "e.g. 9000 or 127.0.0.1:9000"))


def check_can_listen(endpoint: OscEndpoint, option: str = "--osc") -> None:
    """Bind a UDP socket to ``endpoint`` and release it: a busy or foreign port fails here, before
    the model loads, with one line."""
    family = socket.AF_INET6 if ":" in endpoint.host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.bind((endpoint.host, endpoint.port))
    except OSError as err:
        reason = "already in use" if err.errno == errno.EADDRINUSE else (err.strerror or str(err))
        raise BadInputError(f"{option} {endpoint}: cannot listen on UDP {endpoint}: {reason}") from None


def check_endpoints_differ(listen: OscEndpoint | None, status: OscEndpoint | None) -> None:
    """Status sent to our own listening port would come back as unknown commands: refuse it."""
    if listen is None or status is None or listen.port != status.port:
        return
    loopbacks = {"127.0.0.1", "localhost", "0.0.0.0"}
    if listen.host == status.host or (listen.host in loopbacks and status.host in loopbacks):
        raise BadInputError(f"--osc-status {status} is the port --osc listens on; send status to another port (e.g. {status.port + 1})")


class RateLimitedWarnings:
    """One warning line at most every ``every_s`` seconds; the lines in between are counted."""

    def __init__(self, report: Callable[[str], None], every_s: float = _WARN_EVERY_S) -> None:
        self.report = report
        self.every_s = every_s
        self._last = -math.inf
        self._held = 0

    def warn(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last < self.every_s:
            self._held += 1
            return
        more = f" (and {self._held} more ignored OSC messages)" if self._held else ""
        self.report(f"OSC: {message}{more}")
        self._last, self._held = now, 0

    def flush(self) -> None:
        """Tell the count of warnings still held back (at the end of a run)."""
        if self._held:
            self.report(f"OSC: {self._held} more ignored OSC message{'s' if self._held > 1 else ''}")
            self._held = 0


@contextmanager
def python_osc_quiet():
    """python-osc logs a root-logger warning for some malformed bundles and argument types; under
    a flood of garbage that would be thousands of stderr lines. While the listener runs, records
    from python-osc's own files are dropped (our RateLimitedWarnings says what was ignored)."""
    # Both spellings: a record's pathname keeps a symlinked environment's path unresolved.
    package = Path(pythonosc.__file__).parent
    library = (str(package), str(package.resolve()))

    def keep(record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(library)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


class OscControl:
    """The OSC side of a run: a listener that turns messages into node commands, and a status
    sender (acknowledgements and ``/rdstream/status``).

    Nothing that arrives can stop the node: any failure while handling one packet or message, and
    any failure to send an acknowledgement or a status, is one rate-limited warning.

    Args:
        listen: where to receive commands; None = no control.
        status: where to send acknowledgements and status; None = nowhere.
        report: where warning lines go.
    """

    def __init__(self, listen: OscEndpoint | None, status: OscEndpoint | None, report: Callable[[str], None]) -> None:
        self.listen = listen
        self.status = status
        self.report = report
        self.warnings = RateLimitedWarnings(report)
        self.budget = PacketBudget(rate=MAX_PACKETS_PER_S, burst=_BURST)
        self.received = 0  # packets taken off the socket
        self.ignored = 0  # malformed messages, oversized packets and junk packets over the budget
        self.scheduled = 0  # commands waiting for their bundle's time tag
        self.error_budget = PacketBudget(rate=MAX_ERROR_REPLIES_PER_S, burst=MAX_ERROR_REPLIES_PER_S)
        self._client = SimpleUDPClient(status.host, status.port) if status else None
        self._send_failed = False
        self._later: Callable[[float, Callable[[], None]], None] | None = None

    async def serve(self, command: Callable[[NodeCommand], None], *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Receive until cancelled, handing each valid command to ``command`` (the node's hook).

        Signals ``task_status`` once the socket is bound (use with ``TaskGroup.start``).
        """
        try:
            udp = await anyio.create_udp_socket(local_host=self.listen.host, local_port=self.listen.port)
        except OSError as err:
            raise BadInputError(f"--osc {self.listen}: cannot listen on UDP {self.listen}: {err.strerror or err}") from None
        # The colour maps' library loads in about half a second: now, off the loop, not on the
        # first /rdstream/cmap (which would hold every reply and the frames that long).
        await anyio.to_thread.run_sync(colormap_lut, "turbo")
        with python_osc_quiet():
            async with udp, anyio.create_task_group() as timed:
                self._later = lambda delay, action: timed.start_soon(self._run_later, delay, action)
                task_status.started()
                try:
                    await self._receive(udp, command)
                finally:
                    self._later = None
                    timed.cancel_scope.cancel()

    async def _run_later(self, delay: float, action: Callable[[], None]) -> None:
        try:
            await anyio.sleep(delay)
            action()
        finally:
            self.scheduled -= 1

    async def _receive(self, udp, command: Callable[[NodeCommand], None]) -> None:
        try:
            async for data, sender in udp:
                self.received += 1
                # Over the budget only junk is dropped unread: a stop or a pause always gets through.
                if not self.budget.take() and not is_control_packet(data):
                    self.ignored += 1
                    self.warnings.warn(f"more than {MAX_PACKETS_PER_S} packets a second; dropping the excess unread")
                    continue
                self.handle_packet(data, command, origin=f"OSC from {sender[0]}:{sender[1]}")
        finally:
            self.warnings.flush()

    def handle_packet(self, data: bytes, command: Callable[[NodeCommand], None], origin: str = "OSC") -> None:
        """Parse one UDP payload (a message or a bundle) and pass its valid commands on; a bundle
        time-tagged for later (up to MAX_SCHEDULE_AHEAD_S) is passed on at its time while ``serve``
        runs. ``origin`` (e.g. 'OSC from 127.0.0.1:50000') travels with each command. Never raises."""
        if len(data) > MAX_PACKET_BYTES:
            self.ignored += 1
            self.warnings.warn(f"ignored a {len(data)}-byte packet (over {MAX_PACKET_BYTES} bytes)")
            return
        try:
            timed_messages = list(OscPacket(data).messages)
        except Exception as err:  # noqa: BLE001 - untrusted bytes: whatever the parser raises, one warning
            self.ignored += 1
            self.warnings.warn(f"ignored a packet that is not OSC ({type(err).__name__})")
            return
        for timed in timed_messages:
            address = str(getattr(timed.message, "shown_address", getattr(timed.message, "address", "?")))
            try:
                self._handle_message(timed.message, timed.time, command, origin)
            except Exception as err:  # noqa: BLE001 - one message must never stop the node
                self.refuse(address, f"{type(err).__name__}: {err}")

    def _handle_message(self, message, due: float, command: Callable[[NodeCommand], None], origin: str = "") -> None:
        """``message.shown_address`` (when set) is the address as it was sent, for the replies."""
        address = str(getattr(message, "shown_address", message.address))
        args = list(message.params)
        try:
            parsed = parse_command(message.address, args)
        except ValueError as reason:
            shown = " ".join(repr(a)[:40] for a in args[:4]) + (" ..." if len(args) > 4 else "")
            self.refuse(address, str(reason), shown)
            return
        if parsed is None:
            return
        parsed = parsed.from_origin(origin)
        delay = due - time.time()
        if delay <= _DUE_NOW_S or self._later is None:
            command(parsed)
        elif delay > MAX_SCHEDULE_AHEAD_S:
            self.refuse(address, f"its bundle's time tag is {delay:.0f} s ahead "
                                 f"(at most {MAX_SCHEDULE_AHEAD_S:.0f} s; is a clock wrong?)")
        elif self.scheduled >= MAX_SCHEDULED:
            self.refuse(address, f"{MAX_SCHEDULED} time-tagged commands already wait")
        else:
            self.scheduled += 1
            self._later(delay, lambda: self._pass_on(parsed, command, address))

    def _pass_on(self, parsed: NodeCommand, command: Callable[[NodeCommand], None], address: str) -> None:
        try:
            command(parsed)
        except Exception as err:  # noqa: BLE001 - one message must never stop the node
            self.refuse(address, f"{type(err).__name__}: {err}")

    def refuse(self, address: str, reason: str, shown_args: str = "") -> None:
        """A command not carried out: counted, one rate-limited warning line, and
        ``/rdstream/error ADDRESS REASON`` to the status target, so the sender hears why."""
        self.ignored += 1
        address = address[:_SHOWN_ADDRESS_CHARS]
        self.warnings.warn(f"ignored {address!r}{' ' + shown_args if shown_args else ''}: {reason}")
        if self._client is not None and self.error_budget.take():
            self._send(ERROR_ADDRESS, [address, reason])

    def acknowledge(self, command: NodeCommand, source_index: int | None, address: str = ACK_ADDRESS) -> None:
        """``/rdstream/ack ADDRESS SOURCE_INDEX ARGS...`` to the status target; ARGS as they were sent
        (a rig: at ``/rdstream/NAME/ack``, stream.control.rig_osc)."""
        self._send(address, [OSC_PREFIX + command.kind, -1 if source_index is None else int(source_index),
                                 *command.sent])

    def send_status(self, stats: NodeStats, address: str = STATUS_ADDRESS) -> None:
        """``/rdstream/status INPUT_FPS OUTPUT_FPS LATENCY_P50_MS DROPPED NEAR FAR`` (a rig: at
        ``/rdstream/NAME/status``, stream.control.rig_osc); with ``--fill flow|hold`` two more: KEYFRAME (1 =
        the newest frame's own model depth, 0 = carried) and DEPTH_AGE_MS (how much older its keyframe is)."""
        frame = stats.frame
        near = frame.near if frame is not None and frame.near is not None else math.nan
        far = frame.far if frame is not None and frame.far is not None else math.nan
        latency = -1.0 if stats.latency_p50_ms is None else float(stats.latency_p50_ms)
        values = [float(stats.input_fps), float(stats.output_fps), latency, int(stats.dropped), float(near), float(far)]
        if frame is not None and frame.keyframe is not None:
            values += [int(frame.keyframe), float(frame.depth_age_ms if frame.depth_age_ms is not None else math.nan)]
        self._send(address, values)

    def _send(self, address: str, values: list) -> None:
        """Send one message; never raises (it runs inside the node's display stage and stats loop)."""
        if self._client is None:
            return
        try:
            self._client.send(osc_message(address, values))
        except OSError as err:  # an unreachable status target must not stop the node
            if not self._send_failed:
                self._send_failed = True
                self.report(f"OSC: cannot send to --osc-status {self.status}: {err}")
        except Exception as err:  # noqa: BLE001 - a value OSC cannot carry: say so, go on
            self.warnings.warn(f"could not send {address}: {type(err).__name__}: {err}")


# python-osc sends a Python float as float32 ('f'): larger finite values go as doubles ('d'), so
# an echo shows what was sent instead of failing to pack it.
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def osc_message(address: str, values: list) -> OscMessage:
    """One OSC message; floats beyond float32's range as doubles, ints beyond int64 as doubles."""
    builder = OscMessageBuilder(address=address)
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and not -2**63 <= value < 2**63:
            value = float(value)
        if isinstance(value, float) and math.isfinite(value) and abs(value) > _FLOAT32_MAX:
            builder.add_arg(value, OscMessageBuilder.ARG_TYPE_DOUBLE)
        else:
            builder.add_arg(value)
    return builder.build()
