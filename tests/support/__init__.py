"""Doubles only the tests use (a sink that fails, a simulated fresh GPU machine). Those the
benchmarks use too stay in ``bench/support/``."""
