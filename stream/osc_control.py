"""OSC control and status for ``rdstream run --osc PORT --osc-status HOST:PORT`` (python-osc).

Addresses (all under ``/rdstream/``), received on ``--osc`` (127.0.0.1 unless a host is given):

* ``normalize/fixed NEAR FAR``: fixed display range in the aligned depth's units (NEAR maps to
  white/1, FAR to black/0; inverse depth, so NEAR must be larger than FAR).
* ``normalize/running``: back to the running range (starts afresh).
* ``normalize/window N``: the range of the last N frames (N >= 1, at most MAX_WINDOW_FRAMES).
* ``cmap NAME``: matplotlib colour map for every colour-mapping sink (file .mp4, ndi bgra,
  syphon color).
* ``pause 1|0``: hold the last depth frame (the source keeps being read) / go live again.
* ``stop``: drain and stop, as Ctrl-C does.

``normalize/running`` and ``stop`` also accept one number, acting only when it is non-zero, so a
TouchDesigner button channel (1 on press, 0 on release) can drive them.

Each command takes effect from the next output frame and is acknowledged on the status target
as ``/rdstream/ack ADDRESS SOURCE_INDEX ARGS...`` (SOURCE_INDEX: the first output frame it applies
to, -1 for ``stop``). ``--osc-status`` also gets ``/rdstream/status INPUT_FPS OUTPUT_FPS
LATENCY_P50_MS DROPPED NEAR FAR`` once a second (-1 for a latency not known yet, NaN for a range).

A malformed message (unknown address, wrong argument count or type, unknown colour map, NEAR <=
FAR, unparsable bytes, a packet over MAX_PACKET_BYTES) is ignored with one warning line (at most
one line a second; the rest are counted in it). Packets beyond MAX_PACKETS_PER_S are dropped
unparsed, so a flood costs the node little more than the kernel's receive work.
"""

from __future__ import annotations

import errno
import ipaddress
import logging
import math
import socket
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pythonosc
from pythonosc.osc_packet import OscPacket
from pythonosc.udp_client import SimpleUDPClient

from io_adapters.encodings import colormap_lut
from pipeline.errors import BadInputError
from stream.messages import NodeCommand
from stream.stream_stats import NodeStats

OSC_PREFIX = "/rdstream/"
STATUS_ADDRESS = "/rdstream/status"
ACK_ADDRESS = "/rdstream/ack"
DEFAULT_HOST = "127.0.0.1"
# Real control messages are tens of bytes; anything this large is not for us.
MAX_PACKET_BYTES = 4096
# Far above what a patch sends (a fader at 60 fps is 60 a second), far below what costs frames.
MAX_PACKETS_PER_S = 500
_BURST = 100
# The window normaliser keeps 1/16 of each frame: a few minutes at 30 fps stays a few MB.
MAX_WINDOW_FRAMES = 3600
_WARN_EVERY_S = 1.0


@dataclass(frozen=True)
class OscEndpoint:
    """A UDP host (an IP address or ``localhost``) and port."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def parse_endpoint(text: str, option: str) -> OscEndpoint:
    """``PORT`` (on 127.0.0.1) or ``HOST:PORT`` -> OscEndpoint; BadInputError naming ``option``."""
    raw = str(text).strip()
    host, sep, port_text = raw.rpartition(":")
    host = host.strip().strip("[]") if sep else DEFAULT_HOST
    port_text = port_text.strip()
    if not port_text.isdigit():
        raise BadInputError(f"{option} {text!r}: expected PORT or HOST:PORT with a numeric port, e.g. 9000 or 127.0.0.1:9000")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise BadInputError(f"{option} {text!r}: port must be in 1..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise BadInputError(f"{option} {text!r}: HOST must be an IP address (e.g. 127.0.0.1 or 0.0.0.0) or localhost") from None
    return OscEndpoint(host, port)


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


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_command(address: str, args: list) -> NodeCommand | None:
    """One OSC message -> NodeCommand; None for a trigger with value 0 (a released button).

    Raises ValueError with the reason when the message is malformed.
    """
    if not isinstance(address, str) or not address.startswith(OSC_PREFIX):
        raise ValueError("unknown address")
    kind = address[len(OSC_PREFIX):]
    if kind == "normalize/fixed":
        if len(args) != 2 or not all(_is_number(a) for a in args):
            raise ValueError("expects two numbers NEAR FAR")
        near, far = float(args[0]), float(args[1])
        if not near > far:
            raise ValueError("NEAR must be larger than FAR (inverse depth: larger = nearer)")
        return NodeCommand(kind, (near, far))
    if kind == "normalize/window":
        if len(args) != 1 or not _is_number(args[0]) or args[0] != int(args[0]) \
                or not 1 <= args[0] <= MAX_WINDOW_FRAMES:
            raise ValueError(f"expects one whole number of frames, 1..{MAX_WINDOW_FRAMES}")
        return NodeCommand(kind, (int(args[0]),))
    if kind in ("normalize/running", "stop"):
        if not args:
            return NodeCommand(kind)
        if len(args) != 1 or not (_is_number(args[0]) or isinstance(args[0], bool)):
            raise ValueError("expects no argument or one number (acts when non-zero)")
        return NodeCommand(kind) if args[0] else None
    if kind == "cmap":
        if len(args) != 1 or not isinstance(args[0], str):
            raise ValueError("expects one colour-map name")
        try:
            colormap_lut(args[0])
        except BadInputError:
            raise ValueError(f"unknown colour map {args[0]!r}") from None
        return NodeCommand(kind, (args[0],))
    if kind == "pause":
        if len(args) != 1 or not (isinstance(args[0], bool) or _is_number(args[0])) or args[0] not in (0, 1):
            raise ValueError("expects 1 (hold the picture) or 0 (live)")
        return NodeCommand(kind, (bool(args[0]),))
    raise ValueError("unknown address")


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
    library = str(Path(pythonosc.__file__).resolve().parent)

    def keep(record: logging.LogRecord) -> bool:
        return not record.pathname.startswith(library)

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


class PacketBudget:
    """Token bucket: ``rate`` packets a second, bursts of ``burst``."""

    def __init__(self, rate: float = MAX_PACKETS_PER_S, burst: int = _BURST) -> None:
        self.rate, self.burst = rate, burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


class OscControl:
    """The OSC side of a run: a listener that turns messages into node commands, and a status
    sender (acknowledgements and ``/rdstream/status``).

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
        self.budget = PacketBudget()
        self.received = 0  # packets taken off the socket
        self.ignored = 0  # malformed messages, oversized packets and packets over the budget
        self._client = SimpleUDPClient(status.host, status.port) if status else None
        self._send_failed = False

    async def serve(self, command: Callable[[NodeCommand], None], *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Receive until cancelled, handing each valid command to ``command`` (the node's hook).

        Signals ``task_status`` once the socket is bound (use with ``TaskGroup.start``).
        """
        try:
            udp = await anyio.create_udp_socket(local_host=self.listen.host, local_port=self.listen.port)
        except OSError as err:
            raise BadInputError(f"--osc {self.listen}: cannot listen on UDP {self.listen}: {err.strerror or err}") from None
        with python_osc_quiet():
            async with udp:
                task_status.started()
                await self._receive(udp, command)

    async def _receive(self, udp, command: Callable[[NodeCommand], None]) -> None:
        try:
            async for data, _sender in udp:
                self.received += 1
                if not self.budget.take():
                    self.ignored += 1
                    self.warnings.warn(f"more than {MAX_PACKETS_PER_S} packets a second; dropping the excess unread")
                    continue
                self.handle_packet(data, command)
        finally:
            self.warnings.flush()

    def handle_packet(self, data: bytes, command: Callable[[NodeCommand], None]) -> None:
        """Parse one UDP payload (a message or a bundle) and pass its valid commands on."""
        if len(data) > MAX_PACKET_BYTES:
            self.ignored += 1
            self.warnings.warn(f"ignored a {len(data)}-byte packet (over {MAX_PACKET_BYTES} bytes)")
            return
        try:
            messages = [timed.message for timed in OscPacket(data).messages]
        except Exception as err:  # noqa: BLE001 - untrusted bytes: whatever the parser raises, one warning

            self.ignored += 1
            self.warnings.warn(f"ignored a packet that is not OSC ({type(err).__name__})")
            return
        for message in messages:
            args = list(message.params)
            try:
                parsed = parse_command(message.address, args)
            except ValueError as reason:
                self.ignored += 1
                shown = " ".join(repr(a) for a in args[:4]) + (" ..." if len(args) > 4 else "")
                self.warnings.warn(f"ignored {message.address[:80]!r} {shown}: {reason}")
                continue
            if parsed is not None:
                command(parsed)

    def acknowledge(self, command: NodeCommand, source_index: int | None) -> None:
        """``/rdstream/ack ADDRESS SOURCE_INDEX ARGS...`` to the status target."""
        self._send(ACK_ADDRESS, [OSC_PREFIX + command.kind, -1 if source_index is None else int(source_index),
                                 *command.args])

    def send_status(self, stats: NodeStats) -> None:
        """``/rdstream/status INPUT_FPS OUTPUT_FPS LATENCY_P50_MS DROPPED NEAR FAR``."""
        frame = stats.frame
        near = frame.near if frame is not None and frame.near is not None else math.nan
        far = frame.far if frame is not None and frame.far is not None else math.nan
        latency = -1.0 if stats.latency_p50_ms is None else float(stats.latency_p50_ms)
        self._send(STATUS_ADDRESS, [float(stats.input_fps), float(stats.output_fps), latency, int(stats.dropped),
                                    float(near), float(far)])

    def _send(self, address: str, values: list) -> None:
        if self._client is None:
            return
        try:
            self._client.send_message(address, values)
        except OSError as err:  # an unreachable status target must not stop the node
            if not self._send_failed:
                self._send_failed = True
                self.report(f"OSC: cannot send to --osc-status {self.status}: {err}")
