"""One StreamNode run in-process for tests: the node built from doubles as ``rdstream run`` builds it."""

from __future__ import annotations

import anyio

from bench.support.stream_doubles import FakeSteps, make_aligner
from stream.stages.display_normalizer import parse_normalize
from stream.node import NodeConfig, StreamNode


def run_node(source, sinks, steps=None, normalize="running", **config):
    """Run a node from ``source`` to ``sinks`` (named sink0:, sink1:, ...) with ``steps`` (default
    ``FakeSteps()``) and ``NodeConfig(**config)``, without signal handling; returns (NodeResult,
    the lines it reported, the node)."""
    reports: list[str] = []
    cfg = NodeConfig(**config)
    node = StreamNode(source, [(f"sink{i}:", s) for i, s in enumerate(sinks)], steps or FakeSteps(),
                      make_aligner(cfg.plan, cfg.lookahead), parse_normalize(normalize), cfg, report=reports.append)
    return anyio.run(node.run), reports, node
