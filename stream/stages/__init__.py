"""The live node's stages and what they pass along: one module per stage, joined by bounded anyio streams.

``stage`` is the base every stage derives from, ``messages`` what travels between stages (frames,
``StreamEnd``, ``NodeCommand``); capture, encode, snippet, align, fill, display and fan-out are one
module each, with their helpers: ``rolling_window`` (bounded per-frame storage), ``keyframe_gate``
(when capture may hand a frame to the model), ``display_normalizer`` (display ranges),
``live_controls`` (the display stage's inbox of commands) and ``calls`` (blocking calls off the
event loop). Stages may import ``stream.model`` (the model steps they call) and ``stream.stats``;
never ``stream.control``, ``stream.monitor``, ``stream.node`` or ``stream.rig``, which use them.
"""
