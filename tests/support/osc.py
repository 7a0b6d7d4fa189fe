"""OSC helpers for tests that drive a node over real python-osc packets on 127.0.0.1: a free port,
a status listener, a node run with OSC control beside a script, and a wait for output frames."""

from __future__ import annotations

import socket
import threading
import time

import anyio
from pythonosc.dispatcher import Dispatcher
from pythonosc.osc_server import ThreadingOSCUDPServer
from pythonosc.udp_client import SimpleUDPClient

from bench.support.stream_doubles import FakeSteps, make_aligner
from pipeline.snippets import SnippetPlan
from stream.stages.display_normalizer import parse_normalize
from stream.stages.live_controls import LiveControls
from stream.node import NodeConfig, StreamNode
from stream.control.osc_control import OscControl, OscEndpoint

LOOPBACK = "127.0.0.1"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((LOOPBACK, 0))
        return probe.getsockname()[1]


class StatusListener:
    """A real python-osc server collecting every (address, args) sent to it."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list]] = []
        dispatcher = Dispatcher()
        dispatcher.set_default_handler(lambda address, *args: self.messages.append((address, list(args))))
        self.server = ThreadingOSCUDPServer((LOOPBACK, 0), dispatcher)
        self.endpoint = OscEndpoint(LOOPBACK, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def acks(self) -> dict[str, list]:
        return {args[0]: args[1:] for address, args in self.messages if address == "/rdstream/ack"}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def run_controlled_node(source, sink, script, plan=SnippetPlan(3, (1, 5)), stats_interval_s=1.0):
    """Run the node with OSC control on a free port; ``script(client, sink, node)`` is an async
    function run beside it (it sends OSC). Returns (result, status listener, reports, control)."""
    listener = StatusListener()
    reports: list[str] = []
    port = free_udp_port()
    control = OscControl(OscEndpoint(LOOPBACK, port), listener.endpoint, reports.append)
    config = NodeConfig(plan=plan, lookahead=0, stats_interval_s=stats_interval_s)
    node = StreamNode(source, [("rec:", sink)], FakeSteps(), make_aligner(plan), parse_normalize("running"), config,
                      report=reports.append, on_stats=control.send_status,
                      controls=LiveControls(on_applied=control.acknowledge))
    client = SimpleUDPClient(LOOPBACK, port)

    async def main():
        async with anyio.create_task_group() as tg:
            await tg.start(control.serve, node.command)
            tg.start_soon(script, client, sink, node)
            result = await node.run()
            tg.cancel_scope.cancel()
        return result

    try:
        result = anyio.run(main)
        time.sleep(0.2)  # the last acknowledgements are in flight on loopback
    finally:
        listener.close()
    return result, listener, reports, control


async def wait_frames(sink, count: int, timeout: float = 20.0) -> None:
    with anyio.fail_after(timeout):
        while len(sink.frames) < count:
            await anyio.sleep(0.005)
