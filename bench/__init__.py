"""Benchmarks that print one JSON document each; ``bench.support`` holds what tests and benchmarks share."""
