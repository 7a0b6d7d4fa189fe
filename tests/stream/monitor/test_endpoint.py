"""``--monitor`` and ``--monitor-token`` before anything loads, and the latency histogram /metrics reads.

The command line itself is tested in a real process in tests/cli/test_run_checks.py.
"""

from __future__ import annotations

import socket

import numpy as np
import pytest

from pipeline.errors import BadInputError
from stream.monitor.endpoint import check_can_serve, listen_socket, parse_monitor
from stream.stages.display_normalizer import WindowRangeNormalizer, parse_normalize
from stream.stages.display_stage import DisplayStage
from stream.control.osc_commands import parse_command
from stream.stats.stream_stats import LatencyTracker


def test_a_port_alone_listens_on_loopback_with_a_token_made_for_the_controls():
    endpoint = parse_monitor("8080", None)
    assert (endpoint.host, endpoint.port, endpoint.loopback, endpoint.token_generated) == ("127.0.0.1", 8080, True, True)
    assert len(endpoint.token) >= 16 and parse_monitor("8080", None).token != endpoint.token
    assert endpoint.url() == f"http://127.0.0.1:8080/#token={endpoint.token}"
    assert parse_monitor("[::1]:8080", None).url(9000).startswith("http://[::1]:9000/")


def test_another_host_needs_a_token_given_or_asked_for():
    with pytest.raises(BadInputError, match="--monitor-token TOKEN, or --monitor-token new"):
        parse_monitor("0.0.0.0:8080", None)
    made = parse_monitor("0.0.0.0:8080", "new")
    assert made.token_generated and not made.loopback and len(made.token) >= 16
    given = parse_monitor("0.0.0.0:8080", "a-long-enough-token-123")
    assert given.token == "a-long-enough-token-123" and not given.token_generated


@pytest.mark.parametrize("text, token, message", [
    ("http", None, "numeric port"),
    ("0", None, "1..65535"),
    ("70000", None, "1..65535"),
    ("stage-pc:8080", None, "IP address"),
    ("8080", "short", "at least 16"),
    ("8080", "has a space in it, long enough", "without spaces"),
])
def test_malformed_monitor_options_are_one_clear_line(text, token, message):
    with pytest.raises(BadInputError, match=message):
        parse_monitor(text, token)


def test_a_busy_port_and_an_address_this_machine_lacks_are_refused_before_the_run():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(BadInputError, match="already in use"):
            check_can_serve(parse_monitor(str(port), None))
    with pytest.raises(BadInputError, match="no such address"):
        check_can_serve(parse_monitor("192.0.2.7:8080", "new"))  # TEST-NET-1: never this machine's


def test_the_checked_port_is_free_again_for_the_run():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    endpoint = parse_monitor(str(port), None)
    check_can_serve(endpoint)
    with listen_socket(endpoint) as sock:
        assert sock.getsockname()[1] == port


def test_the_window_range_is_a_live_command_like_the_others():
    command = parse_command("/rdstream/normalize/window", [30])
    assert (command.kind, command.args) == ("normalize/window", (30,))
    for bad in ([0], [2.5], ["30"], [], [1e9]):
        with pytest.raises(ValueError, match="whole number of frames"):
            parse_command("/rdstream/normalize/window", bad)
    stage = DisplayStage(parse_normalize("running"))
    stage.apply(command)
    assert isinstance(stage.normalizer, WindowRangeNormalizer) and stage.normalizer._recent.maxlen == 30


def test_cumulative_latency_counts_match_the_latencies_to_within_one_bin():
    rng = np.random.default_rng(0)
    latencies = rng.uniform(0.02, 3.0, size=2000)
    tracker = LatencyTracker()
    for value in latencies:
        tracker.add(float(value), now=0.0)
    bounds = [0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0]
    counts = tracker.cumulative_counts(bounds)
    for bound, count in zip(bounds, counts):
        exact_low = int((latencies <= bound / 1.01).sum())
        exact_high = int((latencies <= bound).sum())
        assert exact_low <= count <= exact_high, (bound, count)
    assert counts[0] == 0 and counts[-1] == 2000
    assert tracker.sum_s == pytest.approx(latencies.sum())
