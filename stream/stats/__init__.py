"""What a run measures and says: rates, latency, model-work counts, the status line and ``--stats-json``.

``stream_stats`` (``NodeStats``, the sampler, the JSON writer), ``stage_metrics`` (the counters
every stage keeps), ``rate_meter`` (frames per second from the frames' own times), ``fill_stats``
(``--fill``'s model rate and depth age) and ``console_pipes`` (stdout/stderr that a closed pipe
cannot stop, for the status line and the command line). It imports nothing else from ``stream``:
the stages, control and monitor read from it.
"""
