"""The README's TouchDesigner quick path works as written: every `rdstream` line of its section
runs to the end with the tiny checkpoint, and the demo, the TouchDesigner script and the README
agree on the first one.

Each line is run as a user would run it, with only what this machine needs changed: the camera
becomes a short test pattern, the tiny checkpoint is added (with `--res 32`, to keep the test
fast), the NDI name gets a suffix (the NDI library locks a sender name per machine, and other
tests run here too), and a Spout or Syphon sink, which needs Windows or macOS and a GPU context,
becomes `null:` after its URI has been checked by the sink's own option parser. Where the machine
allows it, each line runs in a private network namespace that has only loopback (NDI and OSC stay
off every real network, and the OSC ports of the README are free there).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys

from bench.support.netns import can_unshare_network, private_network_command
from io_adapters.uri import parse_uri
from tests.conftest import ROOT

SECTION = "## 3. TouchDesigner in three steps"
TEST_SOURCE = "test:?frames=2&size=64x48&rate=30"


def quick_path_lines() -> list[str]:
    """The `rdstream` lines of the README's code blocks in the TouchDesigner section."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ", 1)]
    blocks = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    return [line.strip() for block in blocks for line in block.splitlines() if line.strip().startswith("rdstream ")]


def _adapted(line: str, tiny_checkpoint, suffix: str) -> list[str]:
    """The line's arguments after `rdstream`, changed only as the module docstring says."""
    from io_adapters.spout_io import spout_sink_options
    from io_adapters.syphon_io import syphon_sink_options

    words = shlex.split(line)[1:]
    for i, word in enumerate(words[:-1]):
        if word == "--source":
            words[i + 1] = TEST_SOURCE
        elif word == "--sink":
            uri = parse_uri(words[i + 1])
            if uri.scheme in ("spout", "syphon"):
                (spout_sink_options if uri.scheme == "spout" else syphon_sink_options)(uri)
                words[i + 1] = "null:"
            elif uri.scheme == "ndi":
                words[i + 1] = words[i + 1].replace(f"ndi:{uri.target}", f"ndi:{uri.target} {suffix}", 1)
    return [*words, "-c", str(tiny_checkpoint), "--res", "32"]


def test_the_first_line_is_the_one_the_demo_and_the_touchdesigner_script_name():
    from stream.cli.demo import TOUCHDESIGNER_FIRST_LINE

    lines = quick_path_lines()
    assert len(lines) >= 3 and {parse_uri(shlex.split(line)[shlex.split(line).index("--sink") + 1]).scheme
                                for line in lines} == {"ndi", "spout", "syphon"}
    assert lines[0] == TOUCHDESIGNER_FIRST_LINE
    script = (ROOT / "docs" / "touchdesigner" / "build_network.py").read_text(encoding="utf-8")
    assert 'VARIANT = "depth"' in script and '--sink "ndi:Depth?format=p216" {PORTS}' in script
    assert lines[0].endswith('--sink "ndi:Depth?format=p216" --osc 9000 --osc-status 9001')


# One process runs every line in turn (torch is imported once: the lines, not Python's start-up,
# are what is tested) and says how each ended.
CHILD = """import json, sys
from stream.cli import main
for n, args in enumerate(json.loads(sys.argv[1])):
    try:
        main(args)
        code = 0
    except SystemExit as done:
        code = done.code or 0
    sys.stderr.write(f"quick-path line {n} exit {code}\\n")
"""


def test_every_line_of_the_touchdesigner_quick_path_runs(tiny_checkpoint):
    lines = quick_path_lines()
    args = [_adapted(line, tiny_checkpoint, f"td-docs {os.getpid()}-{n}") for n, line in enumerate(lines)]
    if can_unshare_network() and not os.environ.get("RDSTREAM_PRIVATE_NETNS"):
        argv = private_network_command(CHILD, json.dumps(args))
    else:  # the shared loopback: the README's OSC ports may be taken by another program
        argv = [sys.executable, "-c", CHILD, json.dumps(_with_free_ports(args))]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=240)
    for n, line in enumerate(lines):
        assert f"quick-path line {n} exit 0" in done.stderr, f"{line}\n{done.stderr}"
    assert done.stderr.count("2 frames in, 2 out") == len(lines), done.stderr


def _with_free_ports(args: list[list[str]]) -> list[list[str]]:
    """The lines with free UDP ports in place of the README's OSC ports."""
    changed = []
    for line in args:
        line = list(line)
        for i, word in enumerate(line[:-1]):
            if word in ("--osc", "--osc-status"):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.bind(("127.0.0.1", 0))
                    line[i + 1] = str(probe.getsockname()[1])
        changed.append(line)
    return changed
