"""An operator always hears why: refused commands answered over OSC and by the monitor with the
reason (never a traceback), and a stop that says who asked for it, in the summary, the stats and
the page. Real python-osc packets on 127.0.0.1; the node with model-free doubles; the monitor's
starlette app called in-process (its HTTP server is tested in tests/stream/monitor/test_server.py)."""

from __future__ import annotations

import json
import re
import time

import anyio
import pytest
from pythonosc.udp_client import SimpleUDPClient

from bench.support.stream_doubles import FakeSteps, ListSource, RecordingSink, make_aligner
from pipeline.snippets import SnippetPlan
from stream.cli.run_job import summary_line
from stream.stages.display_normalizer import parse_normalize
from stream.stages.live_controls import LiveControls
from stream.monitor.endpoint import parse_monitor
from stream.monitor.server import Monitor
from stream.node import NodeConfig, StreamNode
from stream.control.osc_commands import parse_command
from stream.control.osc_control import ERROR_ADDRESS, OscControl, OscEndpoint
from tests.support.osc import LOOPBACK, StatusListener, free_udp_port, wait_frames

NESTED = [["lite"]], [{}], [None], [[1, 2]], [b"blob"]
PLAN = SnippetPlan(3, (1, 5))


@pytest.mark.parametrize("args", NESTED)
@pytest.mark.parametrize("kind", ["speed", "cmap", "pause", "stop", "normalize/running", "normalize/window"])
def test_an_argument_that_is_not_a_number_or_text_is_refused_with_the_reason(kind, args):
    with pytest.raises(ValueError, match="arguments are numbers or text; got "):
        parse_command("/rdstream/" + kind, list(args))
    with pytest.raises(ValueError, match="arguments are numbers or text"):
        parse_command("/rdstream/normalize/fixed", [1.0, *args])


class _Asgi:
    """Requests straight into an ASGI app (no sockets), as uvicorn would pass them."""

    def __init__(self, app) -> None:
        self.app = app

    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                      client=(LOOPBACK, 50123)) -> tuple[int, dict]:
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
                 "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1")] + [(k.lower().encode(), v.encode())
                                                         for k, v in (headers or {}).items()],
                 "client": client, "server": (LOOPBACK, 8080)}
        pending = [{"type": "http.request", "body": body, "more_body": False}]
        sent: list[dict] = []

        async def receive():
            return pending.pop(0) if pending else {"type": "http.disconnect"}

        async def send(message):
            sent.append(message)

        await self.app(scope, receive, send)
        reply = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
        return sent[0]["status"], json.loads(reply or b"null")


def _control(monitor: Monitor, command: str, args) -> tuple[int, dict]:
    headers = {"content-type": "application/json", "x-rdstream-token": monitor.endpoint.token}
    body = json.dumps({"command": command, "args": args}).encode()
    return anyio.run(_Asgi(monitor.app()).request, "POST", "/control", body, headers)


class _Hook:
    def __init__(self) -> None:
        self.commands = []

    def command(self, command) -> None:
        self.commands.append(command)


def test_nested_arguments_on_the_monitor_are_a_400_with_the_reason_not_a_crash(capfd):
    monitor = Monitor(parse_monitor("8080", None))
    monitor.views[""].node = hook = _Hook()  # the one stream of rdstream run
    for args in NESTED[:-1]:  # JSON has no blobs
        status, body = _control(monitor, "speed", list(args))
        assert status == 400 and body["error"].startswith("speed: arguments are numbers or text; got "), body
    status, body = _control(monitor, "pause", [[1]])
    assert status == 400 and "got a list" in body["error"]
    assert hook.commands == []
    status, body = _control(monitor, "pause", [1])  # the same path still takes a good command
    assert status == 202 and hook.commands[0].origin == "monitor page from 127.0.0.1"
    assert "Traceback" not in capfd.readouterr().err


def test_every_refused_osc_command_is_answered_on_the_status_port_within_half_a_second():
    listener = StatusListener()
    port = free_udp_port()
    control = OscControl(OscEndpoint(LOOPBACK, port), listener.endpoint, lambda line: None)
    refused = [("/rdstream/normalize/fixed", [0, 1], "larger than FAR"),
               ("/rdstream/cmap", ["no-such-map"], "unknown colour map 'no-such-map'"),
               ("/rdstream/zoom", [2], "unknown address"),
               ("/rdstream/speed", ["warp"], "expects one rung")]
    delays: list[float] = []

    async def main():
        async with anyio.create_task_group() as tg:
            await tg.start(control.serve, lambda command: None)
            client = SimpleUDPClient(LOOPBACK, port)
            for address, args, _ in refused:
                seen = len(listener.messages)
                sent = time.perf_counter()
                client.send_message(address, args)
                with anyio.fail_after(0.5):
                    while len(listener.messages) == seen:
                        await anyio.sleep(0.002)
                delays.append(time.perf_counter() - sent)
            tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    finally:
        listener.close()
    replies = listener.messages
    assert [address for address, _ in replies] == [ERROR_ADDRESS] * len(refused), replies
    for (address, _, reason), (_, reply) in zip(refused, replies):
        assert reply[0] == address and reason in reply[1], reply
    assert max(delays) < 0.5 and control.ignored == len(refused)


def _node_with_controls(tmp_path, control: OscControl | None, monitor: Monitor | None = None, frames: int = 2000):
    sink = RecordingSink()
    acknowledge = control.acknowledge if control is not None else (lambda command, index: None)
    node = StreamNode(ListSource(frames, interval=0.01), [("rec:", sink)], FakeSteps(), make_aligner(PLAN),
                      parse_normalize("running"), NodeConfig(plan=PLAN, lookahead=0, stats_interval_s=0.2),
                      report=lambda line: None, inform=lambda line: None, stats_json=tmp_path / "stats.jsonl",
                      controls=LiveControls(on_applied=acknowledge), monitor=None)
    if monitor is not None:
        monitor.views[""].node = node
    return node, sink


def test_a_stop_by_osc_says_who_sent_it_in_the_summary_and_the_stats(tmp_path):
    listener = StatusListener()
    port = free_udp_port()
    control = OscControl(OscEndpoint(LOOPBACK, port), listener.endpoint, lambda line: None)
    node, sink = _node_with_controls(tmp_path, control)
    client = SimpleUDPClient(LOOPBACK, port)

    async def main():
        async with anyio.create_task_group() as tg:
            await tg.start(control.serve, node.command)

            async def stop_soon():
                await wait_frames(sink, 10)
                client.send_message("/rdstream/stop", [1])

            tg.start_soon(stop_soon)
            result = await node.run()
            tg.cancel_scope.cancel()
        return result

    try:
        result = anyio.run(main)
    finally:
        listener.close()
    client_port = client._sock.getsockname()[1]
    assert result.stopped_by == f"OSC from 127.0.0.1:{client_port}"
    assert summary_line(result).startswith(f"interrupted: stopped by OSC from 127.0.0.1:{client_port}; ")
    last = json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])
    assert last["stopped_by"] == result.stopped_by


def test_a_stop_from_the_monitor_page_says_so_and_the_page_state_shows_it(tmp_path):
    monitor = Monitor(parse_monitor("8080", None))
    node, sink = _node_with_controls(tmp_path, None, monitor)
    states = []

    async def main():
        async with anyio.create_task_group() as tg:
            async def stop_soon():
                await wait_frames(sink, 10)
                asgi = _Asgi(monitor.app())
                status, body = await asgi.request(
                    "POST", "/control", json.dumps({"command": "stop", "args": []}).encode(),
                    {"content-type": "application/json", "x-rdstream-token": monitor.endpoint.token},
                    client=("127.0.0.1", 40000))
                assert status == 202, body
                states.append((await asgi.request("GET", "/live.json"))[1]["state"])

            tg.start_soon(stop_soon)
            return await node.run()

    result = anyio.run(main)
    assert result.stopped_by == "monitor page from 127.0.0.1"
    assert states[0]["stopped_by"] == "monitor page from 127.0.0.1"
    assert "stopped by monitor page from 127.0.0.1" in summary_line(result)


def test_a_no_drop_summary_gives_the_rate_and_time_per_frame_not_a_queue_latency(tmp_path):
    node, _ = _node_with_controls(tmp_path, None, frames=30)
    result = anyio.run(node.run)
    line = summary_line(result)
    assert result.every_frame and re.search(r"source ended: [\d.]+ fps out; every frame processed, \d+ ms per frame", line)
    assert "latency" not in line
