"""Finding NDI sources: the loopback asked directly, a fresh probe finder per search step (see the
package docstring: on the shared port each connection reaches one sending process), and the
listing of ``rdstream sources``."""

from __future__ import annotations

import threading
import time

from io_adapters.ndi.library import load_ndi
from pipeline.errors import RollingDepthError, RuntimeFailure

LOOPBACK = "127.0.0.1"
# While searching, a fresh probe finder every PROBE_S: with N processes sending NDI on one machine,
# each probe reaches the wanted one with chance 1/N (measured on loopback: a probe answers in ms).
PROBE_S = 0.2


def extra_ips(user_ips: str | None) -> str:
    """Comma-separated addresses a finder asks directly: always the loopback, plus the user's."""
    ips = [LOOPBACK] + [ip.strip() for ip in (user_ips or "").split(",") if ip.strip() and ip.strip() != LOOPBACK]
    return ",".join(ips)


def matches_source_name(wanted: str, full_name: str) -> bool:
    """NDI names are 'MACHINE (NAME)': accept the full name or just NAME, case-insensitively."""
    wanted_folded = wanted.strip().casefold()
    full = full_name.casefold()
    if wanted_folded == full:
        return True
    if full.endswith(")") and "(" in full:
        return full[full.index("(") + 1 : -1] == wanted_folded
    return False


class NdiFinder:
    """A live list of NDI sources (keep one open: discovery fills it in the background).

    ``sources()`` is what the long-lived finder saw plus what the current probe saw; ``probe()``
    replaces the probe, i.e. asks the direct addresses again over a new connection (see the
    package docstring: on a shared port each connection reaches one sending process).
    """

    def __init__(self, ips: str | None = None) -> None:
        self._ndi = load_ndi()
        self.asked = extra_ips(ips)
        self._find = self._create()
        self._probe = None

    def _create(self):
        settings = self._ndi.FindCreate()
        settings.show_local_sources = True
        settings.extra_ips = self.asked
        find = self._ndi.find_create_v2(settings)
        if find is None:
            raise RuntimeFailure("could not create an NDI finder")
        return find

    def probe(self) -> None:
        """Ask the direct addresses again over a new connection (replaces the previous probe)."""
        if self._probe is not None:
            self._ndi.find_destroy(self._probe)
            self._probe = None
        self._probe = self._create()

    def sources(self) -> list:
        """Current NDIlib.Source objects (``.ndi_name``, ``.url_address``), each name once."""
        found = {}
        for find in (self._find, self._probe):
            if find is not None:
                for source in self._ndi.find_get_current_sources(find):
                    found.setdefault(source.ndi_name, source)
        return list(found.values())

    def names(self) -> list[str]:
        return [source.ndi_name for source in self.sources()]

    def find(self, wanted: str):
        """The source named ``wanted`` among those seen now (see ``matches_source_name``), or None."""
        for source in self.sources():
            if matches_source_name(wanted, source.ndi_name):
                return source
        return None

    def wait_for(self, wanted: str, timeout_s: float, stop: threading.Event | None = None):
        """The source named ``wanted``, or None after ``timeout_s`` (probing again every PROBE_S)."""
        deadline = time.monotonic() + timeout_s
        next_probe = time.monotonic()  # what the long-lived finder has is checked first, then probes
        while True:
            source = self.find(wanted)
            if source is not None:
                return source
            now = time.monotonic()
            left = deadline - now
            if left <= 0 or (stop is not None and stop.is_set()):
                return None
            if now >= next_probe:
                self.probe()
                next_probe = now + PROBE_S
            self.wait(min(left, 0.05))

    def wait(self, seconds: float) -> None:
        """Block up to ``seconds`` until the newest finder's list changes."""
        self._ndi.find_wait_for_sources(self._probe or self._find, int(seconds * 1000) + 1)

    def close(self) -> None:
        for find in (self._find, self._probe):
            if find is not None:
                self._ndi.find_destroy(find)
        self._find = self._probe = None


def list_ndi_sources(wait_s: float = 1.5, ips: str | None = None) -> list[str]:
    """Names of the NDI sources visible within ``wait_s`` seconds."""
    finder = NdiFinder(ips)
    names: set[str] = set()
    try:
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            finder.probe()  # each probe may reach another sending process (see the package docstring)
            finder.wait(PROBE_S)
            names.update(finder.names())
        return sorted(names)
    finally:
        finder.close()


def ndi_listing(wait_s: float = 1.5, ips: str | None = None) -> tuple[list[str], list[str]]:
    """``rdstream sources``: (NDI source URIs seen in ``wait_s`` seconds, notes: why none, or why
    NDI cannot be asked here). Never raises for a missing library."""
    try:
        entries = [f"ndi:{name}" for name in list_ndi_sources(wait_s, ips)]
        if entries:
            return entries, []
        return [], [f"no NDI source seen in {wait_s:g} s (asked mDNS and {extra_ips(ips).replace(',', ', ')}"
                    + ("" if ips else "; add IPs of other machines with --ndi-ips") + ")"]
    except RollingDepthError as err:
        return [], [str(err)]
