"""Connection limits uvicorn does not set itself: how many, how often, and how long one request may take.

uvicorn bounds header sizes and concurrent requests, but a connection that never sends a request,
sends its headers a byte a minute, or never reads its response would hold a slot forever. Here
every connection must have sent its request and been answered within ``REQUEST_DEADLINE_S`` of
opening (or of its previous answer), else it is aborted, its unsent bytes dropped; and beyond
``MAX_CONNECTIONS`` new connections are closed at once. The server's event loop is the node's,
so the work it may do is bounded too: beyond ``MAX_REQUESTS_PER_S`` (connections and requests,
all clients together; an open page needs about a dozen) connections are dropped before their
requests are parsed. All of it costs the loop one timer and a few comparisons, never a wait.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

from stream.control.packet_budget import PacketBudget

MAX_CONNECTIONS = 64
REQUEST_DEADLINE_S = 10.0
MAX_REQUESTS_PER_S = 60


def guarded_protocol(max_requests_per_s: float = MAX_REQUESTS_PER_S) -> type:
    """A protocol class for one server, with its own request budget."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,),
                {"budget": PacketBudget(rate=max_requests_per_s, burst=int(max_requests_per_s))})


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a per-request deadline."""

    max_connections = MAX_CONNECTIONS
    deadline_s = REQUEST_DEADLINE_S
    budget = PacketBudget(rate=MAX_REQUESTS_PER_S, burst=MAX_REQUESTS_PER_S)  # one per server: guarded_protocol

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections or not self.budget.take():
            self.transport = transport
            transport.abort()
            return
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.deadline_s, self._deadline_passed)

    def on_response_complete(self) -> None:
        if not self.budget.take():  # over the rate: the requests it pipelined behind are not parsed
            self.transport.abort()
            return
        self._restart_deadline()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        deadline = getattr(self, "_deadline", None)
        if deadline is None:  # refused in connection_made: uvicorn never knew it
            return
        deadline.cancel()
        super().connection_lost(exc)

    def _restart_deadline(self) -> None:
        self._deadline.cancel()
        self._deadline = self.loop.call_later(self.deadline_s, self._deadline_passed)

    def _deadline_passed(self) -> None:
        # Idle, still sending its request, or not reading its answer (a closing transport still
        # holds its unsent bytes until the peer reads them): drop it and what it holds.
        self.transport.abort()
