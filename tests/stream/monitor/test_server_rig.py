"""One monitor page for a rig (``rdstream rig RIG.toml --monitor PORT``): a real process with two
streams of the tiny RANDOM checkpoint, read and steered over HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import json
import re
import socket
import subprocess
import sys
import threading
import time

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def request(port: int, method: str, path: str, body: dict | None = None, token: str = "") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", "X-Rdstream-Token": token} if body is not None else {}
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None, headers=headers)
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def wait_for(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def test_a_rigs_page_serves_every_stream_labelled_and_its_stop_drains_the_rig(tmp_path, tiny_checkpoint):
    port = free_port()
    streams = "".join(f'\n[[stream]]\nname = "{name}"\nsource = "test:?size={size}&rate=5"\n'
                      f'sinks = ["npy:{tmp_path / name}.npy"]\n' for name, size in (("left", "64x36"), ("right", "48x48")))
    rig = tmp_path / "rig.toml"
    rig.write_text(f'[model]\ncheckpoint = "{tiny_checkpoint}"\nres = 32\nseed = 0\n'
                   f'[rig]\nmonitor = "{HOST}:{port}"\n{streams}')
    process = subprocess.Popen([sys.executable, "-m", "stream.cli", "rig", str(rig), "--no-status"], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        said, token = [], None
        for line in process.stderr:  # the page's address, with the token its controls need
            said.append(line)
            found = re.search(rf"monitor page: http://127\.0\.0\.1:{port}/#token=(\S+) ", line)
            if found:
                token = found.group(1)
                break
        assert token is not None, "".join(said)
        rest: list[str] = []
        threading.Thread(target=lambda: rest.extend(process.stderr), daemon=True).start()

        def both_reported() -> bool:
            status, body = request(port, "GET", "/status.json")
            return status == 200 and {line["stream"] for line in json.loads(body)} == {"left", "right"}

        assert wait_for(both_reported, 60), "".join(said + rest)
        status, body = request(port, "GET", "/status.json?stream=right")
        assert status == 200 and json.loads(body)["stream"] == "right"
        assert request(port, "GET", "/status.json?stream=nobody")[0] == 404
        status, body = request(port, "GET", "/live.json?stream=left")
        assert status == 200 and json.loads(body)["streams"] == ["left", "right"]

        status, body = request(port, "GET", "/metrics")
        assert status == 200
        families = {f.name: f for f in text_string_to_metric_families(body.decode())}
        for family in families.values():  # every series names its stream
            assert all(sample.labels.get("stream") in ("left", "right") for sample in family.samples), family.name
        frames_in = {s.labels["stream"] for s in families["rdstream_frames_in"].samples}
        assert frames_in == {"left", "right"}

        # a command for one stream reaches that one only; a stop from the page drains the whole rig
        assert request(port, "POST", "/control", {"command": "pause", "args": [1], "stream": "left"}, token)[0] == 202
        assert request(port, "POST", "/control", {"command": "pause", "args": [1], "stream": "x"}, token)[0] == 400
        assert wait_for(lambda: json.loads(request(port, "GET", "/live.json?stream=left")[1])["state"]["paused"], 20)
        assert not json.loads(request(port, "GET", "/live.json?stream=right")[1])["state"]["paused"]
        assert request(port, "POST", "/control", {"command": "stop", "args": [], "stream": "right"}, token)[0] == 202
        assert process.wait(60) == 0, "".join(said + rest)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    ends = [line for line in rest if line.startswith("rdstream rig: ")]
    assert len(ends) == 2 and all("stopped by monitor page from 127.0.0.1" in line for line in ends), rest
    for name in ("left", "right"):  # drained: every file whole
        assert np.load(tmp_path / f"{name}.npy").shape[0] >= 1
