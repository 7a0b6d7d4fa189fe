"""Connection limits uvicorn does not set itself: how many, and how long one request may take.

uvicorn bounds header sizes and concurrent requests, but a connection that never sends a request,
sends its headers a byte a minute, or never reads its response would hold a slot forever. Here
every connection must have sent its request and been answered within ``REQUEST_DEADLINE_S`` of
opening (or of its previous answer), else it is aborted, its unsent bytes dropped; and beyond
``MAX_CONNECTIONS`` new connections are closed at once. Both cost the event loop one timer and
one comparison, never a wait.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_CONNECTIONS = 64
REQUEST_DEADLINE_S = 10.0


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a per-request deadline."""

    max_connections = MAX_CONNECTIONS
    deadline_s = REQUEST_DEADLINE_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport = transport
            transport.abort()
            return
        super().connection_made(transport)
        self._deadline = self.loop.call_later(self.deadline_s, self._deadline_passed)

    def on_response_complete(self) -> None:
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
