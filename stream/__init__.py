"""The real-time runtime and, in ``stream.cli``, the ``rdstream`` command line.

``node`` (one stream's stages) and ``rig`` (1..N streams around one model) assemble the parts:
``stages`` (capture to sinks), ``model`` (the model steps and the batcher), ``stats``, ``control``
(OSC, stop signals) and ``monitor``; each part's ``__init__`` says what it may import.
"""
