"""Run a Python command in a private network namespace that has only the loopback interface.

Used by the NDI tests and the I/O benchmark so that NDI senders, receivers and discovery
never touch a real network: in a fresh namespace (``unshare -n``, Linux, root or user
namespaces) the only interface is ``lo``, which starts down and is brought up here.
"""

from __future__ import annotations

import shutil
import socket
import struct
import subprocess
import sys

_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
INSIDE_ENV = "RDSTREAM_PRIVATE_NETNS"  # set to "1" in the child so it does not re-enter


def can_unshare_network() -> bool:
    """True when ``unshare -n`` works here (Linux with the needed privilege)."""
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        return False
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def bring_loopback_up() -> None:
    """Set IFF_UP on ``lo`` (needs CAP_NET_ADMIN in this namespace; no iproute2 needed)."""
    if sys.platform.startswith("linux"):  # fcntl is POSIX only: the NDI tests import this module on Windows too
        import fcntl

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            request = struct.pack("16sh", b"lo", 0)
            flags = struct.unpack("16sh", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
            fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def private_network_command(python_code: str, *args: str) -> list[str]:
    """argv that runs ``python -c python_code args...`` in a new namespace with ``lo`` up."""
    prelude = "from bench.support.netns import bring_loopback_up; bring_loopback_up()\n"
    return ["unshare", "-n", sys.executable, "-c", prelude + python_code, *args]
