"""The control addresses and what they mean: one OSC message (or the monitor page's POST /control,
which sends the same addresses) -> ``NodeCommand``; and a byte test that tells our packets from
junk without parsing them.

Addresses (all under ``/rdstream/``), received on ``--osc`` (127.0.0.1 unless a host is given):

* ``normalize/fixed NEAR FAR``: fixed display range in the aligned depth's units (NEAR maps to
  white/1, FAR to black/0); the rule of ``--normalize fixed:`` (display_normalizer.check_fixed_range).
* ``normalize/running``: back to the running range (starts afresh).
* ``normalize/window N``: the range of the last N frames (N >= 1, at most MAX_WINDOW_FRAMES).
* ``cmap NAME``: matplotlib colour map for every colour-mapping sink (file .mp4, ndi bgra,
  syphon color).
* ``pause 1|0``: a state: hold the last depth frame (the source keeps being read) / go live again.
* ``stop``: drain and stop, as Ctrl-C does.
* ``speed RUNG``: another rung of the cost ladder (``pipeline.presets.SPEEDS``) from the next frame:
  its strides and snippet length; the encoder and decoder stay as the run loaded them.

``normalize/running`` and ``stop`` also accept one number, acting only when it is non-zero, so a
TouchDesigner button channel (1 on press, 0 on release) can drive them.
"""

from __future__ import annotations

import math

from io_adapters.encodings import colormap_lut
from pipeline.errors import BadInputError
from pipeline.presets import SPEEDS
from stream.stages.display_normalizer import MAX_WINDOW_FRAMES, check_fixed_range
from stream.stages.messages import COMMAND_KINDS, NodeCommand

OSC_PREFIX = "/rdstream/"
# What a command's arguments may be: OSC's numbers, booleans and text (the page sends JSON's).
_SCALAR_TYPES = (bool, int, float, str)
# An OSC address is NUL-terminated: these prefixes match our addresses exactly, not longer ones.
# A rig's per-stream addresses (/rdstream/NAME/stop) end the same way: a control address is ours,
# starts with the prefix and ends with "/KIND" (so "/rdstream/stopx" is junk).
_CONTROL_ENDINGS = tuple(f"/{kind}".encode() + b"\0" for kind in COMMAND_KINDS)
_BUNDLE_HEADER = b"#bundle\0"

def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def parse_command(address: str, args: list) -> NodeCommand | None:
    """One OSC message -> NodeCommand (its ``sent`` holds ``args`` as they came, for the ack);
    None for a trigger with value 0 (a released button).

    Raises ValueError with the reason when the message is malformed.
    """
    command = _parse_command(address, args)
    return None if command is None else NodeCommand(command.kind, command.args, sent=tuple(args))


def _parse_command(address: str, args: list) -> NodeCommand | None:
    if not isinstance(address, str) or not address.startswith(OSC_PREFIX):
        raise ValueError("unknown address")
    if not isinstance(args, (list, tuple)):
        raise ValueError("the arguments must be a list")
    # Checked once for every control, OSC or page, before any rule below compares or hashes them:
    # a list, an object, a blob or a nil is never a valid argument.
    for arg in args:
        if not isinstance(arg, _SCALAR_TYPES):
            raise ValueError(f"arguments are numbers or text; got {_type_name(arg)}")
    kind = address[len(OSC_PREFIX):]
    if kind == "normalize/fixed":
        if len(args) != 2 or not all(isinstance(a, (int, float)) and not isinstance(a, bool) for a in args):
            raise ValueError("expects two numbers NEAR FAR")
        reason = check_fixed_range(args[0], args[1])
        if reason is not None:
            raise ValueError(reason)
        return NodeCommand(kind, (float(args[0]), float(args[1])))
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
        # A state, not a trigger: 0 goes live again (a toggle button's off), unlike stop's 0.
        if len(args) != 1 or not (isinstance(args[0], bool) or _is_number(args[0])) or args[0] not in (0, 1):
            raise ValueError("expects 1 (hold the picture) or 0 (live)")
        return NodeCommand(kind, (bool(args[0]),))
    if kind == "speed":
        if len(args) != 1 or not isinstance(args[0], str) or args[0] not in SPEEDS:
            raise ValueError(f"expects one rung: {', '.join(SPEEDS)}")
        return NodeCommand(kind, (args[0],))
    raise ValueError("unknown address")


def _type_name(value) -> str:
    """What a person calls a JSON or OSC value that is not a number or text."""
    if value is None:
        return "nothing (null/nil)"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (bytes, bytearray)):
        return "a blob"
    return f"a {type(value).__name__}"


def is_control_packet(data: bytes) -> bool:
    """Whether a packet is (or is a bundle holding) a message to one of our addresses; a cheap
    byte test, so that packets over the budget can still be told apart from junk unparsed."""
    prefix = OSC_PREFIX.encode()
    if data.startswith(_BUNDLE_HEADER):
        return prefix in data and any(ending in data for ending in _CONTROL_ENDINGS)
    end = data.find(b"\0") + 1
    return data.startswith(prefix) and end > 0 and data[:end].endswith(_CONTROL_ENDINGS)
