"""bench.coalign says what it is doing on stderr (a full run takes minutes) and keeps stdout JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import ROOT



def test_coalign_bench_reports_progress_on_stderr_and_json_on_stdout():
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "bench.coalign", "--sizes", "24x32", "--frames", "60",
                           "--stream-frames", "30", "--skip-adam"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["clips"][0]["frames"] == 60
    lines = done.stderr.splitlines()
    assert any("offline exact balanced, 60 frames at 24x32" in line for line in lines), done.stderr
    assert any("stream cost, lookahead 2: frame 0 of 30" in line for line in lines), done.stderr
    assert all(line.startswith("bench.coalign [") for line in lines), done.stderr
