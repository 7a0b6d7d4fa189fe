"""Support the benchmarks use, most of it shared with the tests (doubles only the tests use are in
tests/support/); product code (pipeline/, stream/, io_adapters/) never imports it.

- ``synthetic_depth``: synthetic video depth with ground truth and snippet noise, and error metrics.
- ``rendered_scenes``: ray-cast video with colour and true depth (textured ground, spheres crossing),
  for ``--fill``; ``fill_metrics`` scores filled depth against it; ``guided_upsample`` is the
  edge-aware upsampler we measured and did not offer.
- ``stream_doubles``: model-free stand-ins for the node's sources, sinks, model steps and aligner.
- ``netns``: run a command in a private network namespace that has only loopback (NDI tests).
- ``monitor_page``: a real ``rdstream run --monitor`` and headless Chromium (browser test, screenshot).
"""
