"""``--monitor [HOST:]PORT`` and ``--monitor-token``: parsed and checked before the model loads.

Loopback (127.0.0.1, ::1, localhost) is the default. Any other address makes the page, the
previews and the controls reachable from other machines, so it needs a token: ``--monitor-token
TOKEN``, or ``--monitor-token new`` for one generated here (printed once, in the monitor's address).
On loopback without a token one is generated all the same: the controls always need it, so a web
page open in the same browser cannot press them (cross-site requests cannot set its header).
"""

from __future__ import annotations

import errno
import ipaddress
import secrets
import socket
from dataclasses import dataclass

from pipeline.errors import BadInputError
from stream.control.host_port import parse_host_port

NEW_TOKEN = "new"
# Tokens are sent in a header: printable ASCII without spaces, long enough not to be guessed.
MIN_TOKEN_CHARS = 16
_EXAMPLE = "e.g. --monitor 8080 or --monitor 0.0.0.0:8080 --monitor-token new"


@dataclass(frozen=True)
class MonitorEndpoint:
    """Where the monitor listens and the token its controls (and, off loopback, its reads) need.

    token_generated: the token was made here, so the address line is the only place it is shown.
    """

    host: str
    port: int
    token: str
    token_generated: bool

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)

    def url(self, port: int | None = None) -> str:
        """The page's address with the token in the fragment (never sent to the server or its logs)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port if port is None else port}/#token={self.token}"


def is_loopback(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


def parse_monitor(text: str, token: str | None) -> MonitorEndpoint:
    """``PORT`` or ``HOST:PORT`` plus ``--monitor-token`` -> MonitorEndpoint; BadInputError otherwise."""
    host, port = parse_host_port(text, "--monitor", _EXAMPLE)
    if token is None or token == NEW_TOKEN:
        if token is None and not is_loopback(host):
            raise BadInputError(f"--monitor {text}: other machines could see and control this node; give "
                                "--monitor-token TOKEN, or --monitor-token new to have one made and printed once")
        return MonitorEndpoint(host, port, secrets.token_urlsafe(18), token_generated=True)
    if len(token) < MIN_TOKEN_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise BadInputError(f"--monitor-token: use at least {MIN_TOKEN_CHARS} printable ASCII characters without "
                            f"spaces (or 'new' to have one made)")
    return MonitorEndpoint(host, port, token, token_generated=False)


def listen_socket(endpoint: MonitorEndpoint) -> socket.socket:
    """A listening TCP socket on the endpoint; BadInputError with one line when the port is busy or
    not ours (below 1024 without the right to bind it, an address this machine does not have)."""
    host = "127.0.0.1" if endpoint.host == "localhost" else endpoint.host
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        # SO_REUSEADDR: a port left in TIME_WAIT by the previous run is free again at once. Unlike
        # SO_REUSEPORT it does not let two live servers share a port, so a busy port still fails.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, endpoint.port))
        sock.listen(128)
    except OSError as err:
        sock.close()
        if err.errno == errno.EADDRINUSE:
            reason = "the port is already in use (by another program, or another rdstream run); choose another port"
        elif err.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need administrator rights; use e.g. 8080)"
        elif err.errno == errno.EADDRNOTAVAIL:
            reason = "this machine has no such address (use 127.0.0.1, 0.0.0.0 or one of its own addresses)"
        else:
            reason = err.strerror or str(err)
        raise BadInputError(f"--monitor {endpoint.host}:{endpoint.port}: cannot listen on TCP: {reason}") from None
    sock.setblocking(False)
    return sock


def check_can_serve(endpoint: MonitorEndpoint) -> None:
    """Bind and release: a busy or forbidden port fails before the model loads."""
    listen_socket(endpoint).close()


def check_monitor(monitor: str | None, token: str | None) -> MonitorEndpoint | None:
    """--monitor and --monitor-token (or a rig file's monitor and monitor_token): parsed, and the
    port tried, before the model loads; None without a monitor."""
    if monitor is None:
        if token is not None:
            raise BadInputError("--monitor-token is used only with --monitor [HOST:]PORT")
        return None
    endpoint = parse_monitor(monitor, token)
    check_can_serve(endpoint)
    return endpoint
