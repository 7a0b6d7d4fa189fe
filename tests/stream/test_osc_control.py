"""OSC control and status with a real python-osc client and server on 127.0.0.1.

The node runs with model-free test doubles (bench/support/stream_doubles.py) so the tests are fast;
``rdstream run`` itself is driven in tests/cli/test_run_rgbd_osc.py.
"""

from __future__ import annotations

import socket
import sys

import anyio
import numpy as np
import pytest

from stream.stages.display_normalizer import parse_normalize
from pipeline.errors import BadInputError
from pipeline.snippets import SnippetPlan
from stream.stages.messages import NodeCommand
from stream.node import NodeConfig, StreamNode
from stream.control.osc_control import (OscEndpoint, check_can_listen, check_endpoints_differ, parse_command,
                                 parse_endpoint)
from bench.support.stream_doubles import FakeSteps, ListSource, RecordingSink, make_aligner
from tests.support.osc import LOOPBACK, free_udp_port, run_controlled_node, wait_frames


# --- parsing ---------------------------------------------------------------------------------

def test_endpoints_default_to_loopback_and_bad_ones_are_one_line_errors():
    assert parse_endpoint("9000", "--osc") == OscEndpoint("127.0.0.1", 9000)
    assert parse_endpoint("0.0.0.0:9001", "--osc") == OscEndpoint("0.0.0.0", 9001)
    for text, message in [("nine", "numeric port"), ("70000", "1..65535"), ("0", "1..65535"),
                          ("studio:9000", "HOST must be an IP address"), ("127.0.0.1:", "numeric port")]:
        with pytest.raises(BadInputError, match=message):
            parse_endpoint(text, "--osc")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind((LOOPBACK, 0))
        with pytest.raises(BadInputError, match="already in use"):
            check_can_listen(OscEndpoint(LOOPBACK, busy.getsockname()[1]))
    with pytest.raises(BadInputError, match="is the port --osc listens on"):
        check_endpoints_differ(parse_endpoint("9000", "--osc"), parse_endpoint("localhost:9000", "--osc-status"))
    check_endpoints_differ(parse_endpoint("9000", "--osc"), parse_endpoint("9001", "--osc-status"))


def test_commands_are_validated_and_malformed_ones_say_why():
    assert parse_command("/rdstream/normalize/fixed", [1, -0.5]) == NodeCommand("normalize/fixed", (1.0, -0.5))
    assert parse_command("/rdstream/normalize/running", []) == NodeCommand("normalize/running")
    assert parse_command("/rdstream/cmap", ["turbo"]) == NodeCommand("cmap", ("turbo",))
    assert parse_command("/rdstream/pause", [1]) == NodeCommand("pause", (True,))
    assert parse_command("/rdstream/pause", [False]) == NodeCommand("pause", (False,))
    assert parse_command("/rdstream/stop", [1.0]) == NodeCommand("stop")
    assert parse_command("/rdstream/stop", [0]) is None  # a button's release
    for address, args, reason in [
        ("/rdstream/normalize/fixed", [0.5, 0.5], "larger than FAR"),
        ("/rdstream/normalize/fixed", [-1, 1], "larger than FAR"),
        ("/rdstream/normalize/fixed", ["near", 1], "two numbers"),
        ("/rdstream/normalize/fixed", [1.0, float("nan")], "finite"),
        ("/rdstream/cmap", ["no-such-map"], "unknown colour map"),
        ("/rdstream/cmap", [3], "one colour-map name"),
        ("/rdstream/pause", [2], "1 .* or 0"),
        ("/rdstream/pause", ["yes"], "1 .* or 0"),
        ("/rdstream/zoom", [1], "unknown address"),
        ("/other/stop", [], "unknown address"),
    ]:
        with pytest.raises(ValueError, match=reason):
            parse_command(address, args)


# --- every address, end to end through the node ----------------------------------------------

def test_every_address_changes_the_sinks_from_the_next_frame_and_is_acknowledged():
    source = ListSource(400, interval=0.01)
    sink = RecordingSink()

    async def script(client, sink, node):
        steps = [("/rdstream/cmap", ["turbo"]), ("/rdstream/normalize/fixed", [0.5, -0.5]),
                 ("/rdstream/pause", [1]), ("/rdstream/pause", [0]), ("/rdstream/normalize/running", [])]
        for address, args in steps:
            await wait_frames(sink, len(sink.frames) + 12)
            client.send_message(address, args)
        await wait_frames(sink, len(sink.frames) + 12)
        client.send_message("/rdstream/stop", [])

    result, listener, reports, _ = run_controlled_node(source, sink, script, stats_interval_s=0.2)
    acks = listener.acks()
    assert set(acks) == {"/rdstream/cmap", "/rdstream/normalize/fixed", "/rdstream/pause",
                         "/rdstream/normalize/running", "/rdstream/stop"}, listener.messages
    assert result.end_reason == "interrupted" and acks["/rdstream/stop"] == [-1]
    assert 60 < result.frames_out < 400 and reports == []
    frames = {f.index: f for f in sink.frames}
    pause_acks = [args for address, args in listener.messages if address == "/rdstream/ack" and args[0] == "/rdstream/pause"]
    on_at, off_at = pause_acks[0][1], pause_acks[1][1]
    assert pause_acks[0][2:] == [1] and pause_acks[1][2:] == [0]  # echoed as sent (ints)
    cmap_at, fixed_at, running_at = acks["/rdstream/cmap"][0], acks["/rdstream/normalize/fixed"][0], acks["/rdstream/normalize/running"][0]
    assert acks["/rdstream/cmap"][1:] == ["turbo"] and acks["/rdstream/normalize/fixed"][1:] == [0.5, -0.5]
    assert cmap_at < fixed_at < on_at < off_at < running_at
    for index, frame in frames.items():
        assert frame.cmap == (None if index < cmap_at else "turbo"), index
        fixed = frame.display_range == (0.5, -0.5)
        assert fixed == (fixed_at <= index < running_at), (index, frame.display_range)
    # Paused: every frame from on_at shows the last live picture (and colour), the source kept going.
    held = frames[on_at - 1]
    for index in range(on_at, off_at):
        assert frames[index].depth is held.depth and frames[index].rgb is held.rgb
    assert not np.array_equal(frames[off_at].depth, held.depth)
    assert sorted(frames) == list(range(len(frames)))  # no frame lost while paused
    # Status once a second: input fps, output fps, latency p50, dropped, near, far.
    statuses = [args for address, args in listener.messages if address == "/rdstream/status"]
    assert statuses and len(statuses[-1]) == 6 and statuses[-1][1] > 0 and statuses[-1][3] == 0


def test_malformed_messages_are_ignored_with_one_warning_and_change_nothing():
    source = ListSource(1000, interval=0.01)
    sink = RecordingSink()

    async def script(client, sink, node):
        await wait_frames(sink, 5)
        client.send_message("/rdstream/cmap", ["no-such-map"])
        await anyio.sleep(1.1)  # warnings are limited to one line a second
        client.send_message("/rdstream/normalize/fixed", [-1.0, 1.0])
        await anyio.sleep(1.1)
        client.send_message("/rdstream/zoom", [2])
        client.send_message("/rdstream/pause", ["on"])  # within the same second: counted, told at the end
        await anyio.sleep(0.3)
        node.request_stop()

    result, listener, reports, control = run_controlled_node(source, sink, script)
    assert result.end_reason == "interrupted" and [f.index for f in sink.frames] == list(range(result.frames_out))
    assert [r.split(":")[0] for r in reports] == ["OSC"] * 4, reports
    assert "unknown colour map 'no-such-map'" in reports[0] and "larger than FAR" in reports[1]
    assert "unknown address" in reports[2] and "1 more ignored OSC message" in reports[3]
    assert control.ignored == 4
    assert all(f.cmap is None for f in sink.frames) and listener.acks() == {}


def flood_command(port: int, seconds: float, rate: int) -> list[str]:
    """A separate process (so it does not share our GIL) sending ``rate`` packets a second of
    random bytes, a huge message, malformed and unknown messages, for ``seconds``."""
    code = f"""
import os, socket, time
from pythonosc.osc_message_builder import OscMessageBuilder
def msg(address, *args):
    b = OscMessageBuilder(address=address)
    for a in args: b.add_arg(a)
    return b.build().dgram
packets = [os.urandom(n) for n in (1, 7, 64, 512)] + [
    msg("/rdstream/cmap", "x" * 60000), msg("/rdstream/normalize/fixed", "a", "b"), msg("/rdstream/zoom", 1.0),
    msg("/rdstream/pause", 7), msg("/rdstream/stop", "now"), b"/rdstream/pause\\x00,s\\x00\\x00", msg("/rdstream/cmap", *range(2000)),
    b"#bundle\\x00" + bytes(8) + (4).to_bytes(4, "big") + b"abcd", b"/rdstream/cmap\\x00\\x00,C\\x00\\x00"]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
start, sent = time.monotonic(), 0
while time.monotonic() - start < {seconds}:
    for p in packets:
        try: sock.sendto(p, ("127.0.0.1", {port}))
        except OSError: pass
        sent += 1
    time.sleep(max(0.0, start + sent / {rate} - time.monotonic()))
print(sent)
"""
    return [sys.executable, "-c", code]


def test_garbage_and_a_flood_of_10000_packets_a_second_cost_no_frame_and_little_rate(caplog):
    count, interval = 150, 1 / 50  # a 3-second paced --no-drop run
    sent = []

    async def idle(client, sink, node):
        pass

    async def flood(client, sink, node):
        await wait_frames(sink, 1)
        proc = await anyio.open_process(flood_command(client._port, 2.5, 10_000))
        async with proc:
            await proc.wait()
            sent.append(int((await proc.stdout.receive()).decode()))

    # Rates on a shared machine wander with other load: a pair that misses the bound is measured
    # once more (the flood itself must still cost no frame in either run).
    for attempt in range(2):
        baseline, _, _, _ = run_controlled_node(ListSource(count, interval=interval), RecordingSink(), idle)
        sink = RecordingSink()
        flooded, _, reports, control = run_controlled_node(ListSource(count, interval=interval), sink, flood)
        assert flooded.frames_out == count and flooded.dropped == 0 and flooded.lost == 0
        assert [f.index for f in sink.frames] == list(range(count))
        assert sent[-1] >= 15_000 and control.received > 1000 and control.ignored > 1000
        assert len(reports) <= 10  # at most one warning line a second
        assert not [r for r in caplog.records if "pythonosc" in r.pathname]  # the library's own warnings stay quiet
        rate, base_rate = flooded.frames_out / flooded.elapsed_s, baseline.frames_out / baseline.elapsed_s
        print(f"flood: {sent[-1]} packets sent, {control.received} read, {control.ignored} ignored; "
              f"{rate:.1f} fps vs {base_rate:.1f} fps without")
        if rate >= 0.9 * base_rate:
            break
    assert rate >= 0.9 * base_rate, (rate, base_rate)


def test_colour_frames_travel_only_when_a_sink_shows_them():
    class DepthOnlySink(RecordingSink):
        wants_colour = False

    plan = SnippetPlan(3, (1, 5))
    for sink, has_colour in ((DepthOnlySink(), False), (RecordingSink(), True)):
        node = StreamNode(ListSource(8), [("rec:", sink)], FakeSteps(), make_aligner(plan), parse_normalize("running"),
                          NodeConfig(plan=plan))
        anyio.run(node.run)
        assert len(sink.frames) == 8 and all((f.rgb is not None) == has_colour for f in sink.frames)


def run_single_job(source, sinks, osc: OscEndpoint):
    """``rdstream run``'s live job (a rig of one stream) past the model load, with model-free doubles."""
    from rich.console import Console

    from stream.cli.live_control import job_osc
    from stream.cli.live_job import LiveJob, _run_with_status
    from stream.rig import Rig, RigStream

    plan = SnippetPlan(3, (1, 5))
    rig = Rig([RigStream("", source, sinks, FakeSteps(), make_aligner(plan), parse_normalize("running"),
                         NodeConfig(plan=plan))], named=False)
    job = LiveJob([], None, None, start_lines=str, finish=len, single=True, osc=osc)
    control, _ = job_osc(osc, None, None, print, None)
    return _run_with_status(job, rig, control, None, Console(stderr=True))


def test_a_failing_run_with_osc_control_still_ends_in_one_user_error():
    from pipeline.errors import RuntimeFailure
    from tests.support.failing_sink import FailingSink

    outcomes = run_single_job(ListSource(30), [("bad:", FailingSink(2))], OscEndpoint(LOOPBACK, free_udp_port()))
    assert isinstance(outcomes[0].error, RuntimeFailure) and "every sink failed" in str(outcomes[0].error)


def test_a_port_taken_during_the_model_load_is_one_error_and_closes_the_edges():
    source, sink = ListSource(5), RecordingSink()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind((LOOPBACK, 0))
        with pytest.raises(BadInputError, match="cannot listen on UDP"):
            run_single_job(source, [("rec:", sink)], OscEndpoint(LOOPBACK, taken.getsockname()[1]))
    assert source.closed and sink.closed
