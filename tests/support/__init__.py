"""Doubles and helpers only the tests use: a sink that fails (``failing_sink``), one node run from
doubles (``node_runs``), a node driven over OSC on 127.0.0.1 (``osc``), the Spout/Syphon fakes as
fixtures (``texture_fakes``), tiny full or read-only file systems (``small_fs``) and a simulated
fresh GPU machine (``fresh_machine``). Those the benchmarks use too stay in ``bench/support/``."""
