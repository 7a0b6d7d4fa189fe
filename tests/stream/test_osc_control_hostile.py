"""OSC that must never stop or break a live node: values beyond float32, failing hooks, floods
that hide a stop, bundles time-tagged for later. Real python-osc packets on 127.0.0.1, the node
with model-free doubles (as in tests/stream/test_osc_control.py)."""

from __future__ import annotations

import subprocess
import sys
import time

import anyio
import numpy as np
from pythonosc.osc_bundle_builder import OscBundleBuilder
from pythonosc.osc_message_builder import OscMessageBuilder

from bench.support.stream_doubles import ListSource, RecordingSink
from stream.stages.messages import NodeCommand
from stream.control.osc_commands import is_control_packet
from stream.control.osc_control import OscControl, OscEndpoint
from tests.support.osc import LOOPBACK, StatusListener, run_controlled_node, wait_frames


def message(address: str, *typed_args) -> bytes:
    """An OSC message with explicit argument types, e.g. message('/x', (1e308, 'd'))."""
    builder = OscMessageBuilder(address=address)
    for value, kind in typed_args:
        builder.add_arg(value, kind)
    return builder.build().dgram


def test_values_beyond_float32_and_failing_hooks_are_warnings_never_a_crash():
    listener = StatusListener()
    reports: list[str] = []
    control = OscControl(OscEndpoint(LOOPBACK, 9), listener.endpoint, reports.append)
    try:
        # The ack echoes what was sent, even a double float32 cannot hold (this used to raise
        # OverflowError inside the display stage and end the run with an internal error).
        control.acknowledge(NodeCommand("stop", sent=(1e308, 2**70, -3)), None)
        control.acknowledge(NodeCommand("pause", (True,), sent=(1,)), 7)

        def broken_hook(command):
            raise RuntimeError("hook failed")

        control.handle_packet(message("/rdstream/cmap", ("turbo", "s")), broken_hook)
        time.sleep(0.3)
    finally:
        listener.close()
    acks = [args for address, args in listener.messages if address == "/rdstream/ack"]
    assert acks == [["/rdstream/stop", -1, 1e308, float(2**70), -3], ["/rdstream/pause", 7, 1]], acks
    assert len(reports) == 1 and "RuntimeError: hook failed" in reports[0] and control.ignored == 1


def test_a_range_that_would_overflow_is_refused_and_the_stream_stays_finite():
    source, sink = ListSource(1000, interval=0.01), RecordingSink()

    async def script(client, sink, node):
        await wait_frames(sink, 5)
        client.send(_raw(message("/rdstream/normalize/fixed", (1e308, "d"), (-1e308, "d"))))
        await anyio.sleep(1.1)  # warnings: one line a second
        client.send(_raw(message("/rdstream/normalize/fixed", (-1.0, "f"), (1.0, "f"))))
        await anyio.sleep(1.1)
        client.send_message("/rdstream/normalize/fixed", [1e6, -1e6])  # the bound itself is accepted
        await wait_frames(sink, len(sink.frames) + 5)
        client.send_message("/rdstream/stop", [])

    result, listener, reports, control = run_controlled_node(source, sink, script)
    assert result.end_reason == "interrupted", reports
    assert "within +-1e+06" in reports[0] and "larger than FAR" in reports[1], reports
    assert listener.acks()["/rdstream/normalize/fixed"][1:] == [1e6, -1e6]
    assert all(np.isfinite(f.depth).all() and f.depth.min() >= 0 and f.depth.max() <= 1 for f in sink.frames)


class _raw:
    """python-osc's client sends anything with a ``dgram``."""

    def __init__(self, dgram: bytes) -> None:
        self.dgram = dgram


def junk_then_stops_command(port: int) -> list[str]:
    """A separate process: 20,000 junk packets at 10,000 a second, then ``/rdstream/stop`` twice
    inside a flood that goes on for 2 s more. Prints the time.time() of the first stop."""
    code = f"""
import os, socket, sys, time
from pythonosc.osc_message_builder import OscMessageBuilder
junk = [os.urandom(24), OscMessageBuilder(address="/rdstream/zoom").build().dgram]
stop = OscMessageBuilder(address="/rdstream/stop").build().dgram
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start, sent = time.monotonic(), 0
def flood(count):
    global sent
    for _ in range(count):
        sock.sendto(junk[sent % 2], ("127.0.0.1", {port}))
        sent += 1
        time.sleep(max(0.0, start + sent / 10_000 - time.monotonic()))
flood(20_000)
print(time.time(), flush=True)
sock.sendto(stop, ("127.0.0.1", {port}))
flood(500)
sock.sendto(stop, ("127.0.0.1", {port}))
flood(20_000)
"""
    return [sys.executable, "-c", code]


def test_a_stop_inside_a_flood_is_never_dropped_by_the_packet_budget():
    assert is_control_packet(message("/rdstream/stop")) and not is_control_packet(message("/rdstream/stopx"))
    # A rig's per-stream control addresses pass the budget too; junk under the prefix does not.
    assert is_control_packet(message("/rdstream/left/stop")) and is_control_packet(message("/rdstream/left/normalize/fixed"))
    assert not is_control_packet(message("/rdstream/left/stopx")) and not is_control_packet(message("/other/stop"))
    source, sink = ListSource(100_000, interval=0.01), RecordingSink()
    flood: list[subprocess.Popen] = []
    fallback_used = []

    async def script(client, sink, node):
        await wait_frames(sink, 1)
        proc = subprocess.Popen(junk_then_stops_command(client._port), stdout=subprocess.PIPE, text=True)
        flood.append(proc)
        while proc.poll() is None:  # (a cancellable wait: the stop ends this script)
            await anyio.sleep(0.02)
        await anyio.sleep(2.0)
        fallback_used.append(True)  # the stops were lost: end the run anyway, the test fails below
        node.request_stop()

    try:
        result, listener, reports, control = run_controlled_node(source, sink, script)
        ended = time.time()
    finally:
        flood[0].kill()
    first_stop = float(flood[0].stdout.readline())
    flood[0].wait()
    assert not fallback_used and result.end_reason == "interrupted"
    assert "/rdstream/stop" in listener.acks()
    assert ended - first_stop < 1.0, ended - first_stop  # (0.2 s of it: the last acks' grace period)
    assert control.ignored > 5000 and len(reports) <= 8  # the junk was still bounded and counted


def test_a_bundle_time_tagged_for_later_is_applied_at_its_time():
    source, sink = ListSource(1000, interval=0.01), RecordingSink()
    sent_at = []

    async def script(client, sink, node):
        await wait_frames(sink, 3)
        later = OscBundleBuilder(time.time() + 1.0)
        later.add_content(_cmap("turbo"))
        far = OscBundleBuilder(time.time() + 3600)
        far.add_content(_cmap("magma"))
        sent_at.append(time.monotonic())
        client.send(later.build())
        client.send(far.build())
        while not any(f.cmap == "turbo" for f in sink.frames):
            await anyio.sleep(0.005)
        sent_at.append(time.monotonic())
        await wait_frames(sink, len(sink.frames) + 3)
        node.request_stop()

    result, listener, reports, control = run_controlled_node(source, sink, script)
    assert 0.9 <= sent_at[1] - sent_at[0] < 1.6, sent_at
    assert "/rdstream/cmap" in listener.acks() and all(f.cmap != "magma" for f in sink.frames)
    assert len(reports) == 1 and "3600 s ahead" in reports[0], reports


def _cmap(name: str):
    builder = OscMessageBuilder(address="/rdstream/cmap")
    builder.add_arg(name)
    return builder.build()


def test_a_paused_realtime_node_sends_one_held_frame_per_processed_frame():
    """docs/live_io.md: paused, the sinks receive the held picture at the rate they do when live
    (one per processed frame), not at the source rate."""
    from pipeline.snippets import SnippetPlan
    from stream.stages.display_normalizer import parse_normalize
    from stream.stages.live_controls import LiveControls
    from stream.node import NodeConfig, StreamNode
    from bench.support.stream_doubles import FakeSteps, make_aligner

    plan = SnippetPlan(3, (1, 5))
    sink, controls = RecordingSink(), LiveControls()
    node = StreamNode(ListSource(150, interval=0.005), [("rec:", sink)], FakeSteps(predict_delay=0.03),
                      make_aligner(plan), parse_normalize("running"),
                      NodeConfig(plan=plan, lookahead=0, drop_frames=True), controls=controls)
    node.command(NodeCommand("pause", (True,), sent=(1,)))
    result = anyio.run(node.run)
    assert result.dropped > 50 and result.frames_out == result.frames_processed == len(sink.frames)
    assert all(f.depth is sink.frames[0].depth for f in sink.frames)  # the first picture, held
