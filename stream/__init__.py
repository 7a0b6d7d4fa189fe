"""The real-time runtime (stages, node, live stats) and, in ``stream.cli``, the ``rdstream`` command line."""
