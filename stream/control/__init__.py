"""How a running node is steered and stopped from outside: OSC, stop signals, the shared limits.

``osc_commands`` turns ``/rdstream/...`` addresses into ``NodeCommand``s (for OSC and the monitor
page alike), ``osc_control`` is the UDP listener and status sender, ``rig_osc`` the same per stream
of a rig, ``host_port`` the one ``[HOST:]PORT`` parser, ``packet_budget`` the token bucket for
packets and requests, ``stop_signals`` and ``early_stop`` the signals that stop a run. It may import
``stream.stages`` (messages, display checks) and ``stream.stats``; ``stream.monitor``,
``stream.node``, ``stream.rig`` and ``stream.cli`` import it, never the other way round.
"""
