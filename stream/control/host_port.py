"""``PORT`` or ``HOST:PORT`` as ``--osc``, ``--osc-status`` and ``--monitor`` take it: one parser,
so every option reads an address the same way and says the same thing about a bad one."""

from __future__ import annotations

import ipaddress

from pipeline.errors import BadInputError

DEFAULT_HOST = "127.0.0.1"


def parse_host_port(text: str, option: str, example: str) -> tuple[str, int]:
    """``PORT`` (on DEFAULT_HOST) or ``HOST:PORT`` (HOST an IP address, IPv6 in brackets or not, or
    localhost) -> (host, port). BadInputError naming ``option``; ``example`` ends the format error
    (e.g. "e.g. 9000 or 127.0.0.1:9000")."""
    raw = str(text).strip()
    host, sep, port_text = raw.rpartition(":")
    host = host.strip().strip("[]") if sep else DEFAULT_HOST
    port_text = port_text.strip()
    if not port_text.isdigit():
        raise BadInputError(f"{option} {text!r}: expected PORT or HOST:PORT with a numeric port, {example}")
    port = int(port_text)
    if not 1 <= port <= 65535:
        raise BadInputError(f"{option} {text!r}: port must be in 1..65535")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise BadInputError(f"{option} {text!r}: HOST must be an IP address (e.g. 127.0.0.1, or 0.0.0.0 for "
                                "every interface of this machine) or localhost") from None
    return host, port
