"""``rdstream run --monitor`` refuses bad input with one line and exit 2, before the model loads.

The checkpoint given does not exist: had the model load started first, the error would be about
the checkpoint, not the monitor.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_rdstream

BASE = ["run", "--source", "test:?frames=5&size=64x48", "--sink", "null:", "-c", "/nonexistent/checkpoint"]


def one_line_exit_2(result: subprocess.CompletedProcess, expected: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("rdstream: error: --monitor"), result.stderr
    assert expected in lines[0], lines[0]
    assert "Traceback" not in result.stderr


def test_a_busy_port_is_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        one_line_exit_2(run_rdstream(*BASE, "--monitor", str(busy.getsockname()[1])), "already in use")


@pytest.mark.parametrize("monitor, expected", [
    ("stage-pc:8080", "HOST must be an IP address"),
    ("192.0.2.7:8080", "no such address"),
    ("0.0.0.0:8080", "--monitor-token TOKEN"),
])
def test_a_bad_host_or_an_open_bind_without_token_is_one_line_and_exit_2(monitor, expected):
    args = [*BASE, "--monitor", monitor] + (["--monitor-token", "new"] if monitor.startswith("192.") else [])
    one_line_exit_2(run_rdstream(*args), expected)


def test_a_token_without_a_monitor_is_one_line_and_exit_2():
    one_line_exit_2(run_rdstream(*BASE, "--monitor-token", "new"), "only with --monitor")


@pytest.mark.skipif(sys.platform == "win32", reason="privileged ports, /proc and user ids are POSIX")
def test_a_privileged_port_without_the_right_is_one_line_and_exit_2():
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as limit:
        if int(limit.read()) <= 80:
            pytest.skip("this system lets every user bind port 80")
    if os.geteuid() != 0:
        one_line_exit_2(run_rdstream(*BASE, "--monitor", "80"), "permission denied")
        return
    # As root, port 80 is ours: the same check runs as 'nobody', under the system Python (the
    # project's interpreter may sit in root's home, which nobody can read). It needs no package.
    try:
        import pwd

        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop to")
    if not Path("/usr/bin/python3").exists():
        pytest.skip("running as root without a system python3 to run the check as 'nobody'")
    script = ("from pipeline.errors import BadInputError\n"
              "from stream.monitor.endpoint import check_can_serve, parse_monitor\n"
              "try:\n    check_can_serve(parse_monitor('80', None))\n"
              "except BadInputError as err:\n    print(err)\n")
    result = subprocess.run(["/usr/bin/python3", "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=60, user=nobody.pw_uid, group=nobody.pw_gid, extra_groups=[],
                            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)})
    assert result.stdout.startswith("--monitor 127.0.0.1:80: cannot listen on TCP: permission denied"), result
