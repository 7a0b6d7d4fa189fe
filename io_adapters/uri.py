"""One parser for every source and sink URI: ``scheme:target?option=value&option=value``.

* The target may be empty (``null:``, ``test:?frames=10``) and may contain spaces
  (``ndi:Studio Cam``); it is taken literally (no %-decoding, so file names stay as typed).
* Option values are URL-decoded (``cmap=Greys_r``, ``ips=10.0.0.5%2C10.0.0.6``).
* Text without a scheme is a file path (``clip.mp4``, ``./a:b.mp4``, ``C:\\clips\\a.mp4``): a
  scheme is two or more letters/digits/``+-.`` before the first ``:``, so a Windows drive letter
  is never mistaken for one.

``OptionReader`` turns the raw strings into typed values; it rejects unknown options (with a
message listing the allowed ones) as soon as it is created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from fractions import Fraction
from urllib.parse import unquote_plus

from pipeline.errors import BadInputError

# Largest width or height a source may be asked for (``size=WxH``): 8K. Larger asks are typos,
# and one 100000x100000 frame alone would need 30 GB.
MAX_FRAME_SIDE = 8192

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)


@dataclass(frozen=True)
class ParsedUri:
    """A split URI. scheme is lower-case; options keep the order they were given in."""

    scheme: str
    target: str
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text


def parse_uri(text: str) -> ParsedUri:
    """Split ``scheme:target?k=v&k=v`` (a bare path means ``file:``); see the module docstring.

    Raises BadInputError for an empty URI, a malformed option or an option given twice.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadInputError("empty source/sink URI; examples: clip.mp4, camera:0, test:?frames=90, ndi:Studio Cam, null:")
    match = _SCHEME.match(text)
    if not match or "/" in match.group(1) or "\\" in match.group(1):
        return ParsedUri("file", text, {}, text)
    scheme, rest = match.group(1).lower(), match.group(2)
    target, _, query = rest.partition("?")
    options: dict[str, str] = {}
    for part in filter(None, query.split("&")):
        key, sep, value = part.partition("=")
        key = unquote_plus(key).strip()
        if not sep or not key:
            raise BadInputError(f"option {part!r} in {text!r} must look like name=value")
        if key in options:
            raise BadInputError(f"option {key!r} is given twice in {text!r}")
        options[key] = unquote_plus(value)
    return ParsedUri(scheme, target, options, text)


def _listing(names) -> str:
    return ", ".join(sorted(names)) if names else "none"


def unknown_scheme_error(uri: ParsedUri, kind: str, known: dict[str, str]) -> BadInputError:
    """The error for a scheme nobody handles; ``known`` maps scheme -> example."""
    examples = " | ".join(known.values())
    return BadInputError(f"unknown {kind} scheme {uri.scheme!r} in {uri.text!r}; use one of: {examples}")


class OptionReader:
    """Typed access to a URI's options; creating it rejects options not in ``allowed``.

    Args:
        uri: the parsed URI.
        allowed: option name -> short description, for the error message.
    """

    def __init__(self, uri: ParsedUri, allowed: dict[str, str]) -> None:
        self.uri = uri
        self.allowed = allowed
        unknown = [key for key in uri.options if key not in allowed]
        if unknown:
            listing = "; ".join(f"{name} ({desc})" for name, desc in allowed.items()) or "none"
            raise BadInputError(
                f"unknown option {unknown[0]!r} for {uri.scheme}: URIs ({uri.text!r}); allowed: {listing}"
            )

    def _bad(self, name: str, value: str, expected: str) -> BadInputError:
        return BadInputError(f"option {name}={value!r} in {self.uri.text!r}: expected {expected}")

    def text(self, name: str, default: str | None = None) -> str | None:
        return self.uri.options.get(name, default)

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.uri.options.get(name, default).lower()
        if value not in choices:
            raise self._bad(name, value, "one of " + _listing(choices))
        return value

    def integer(self, name: str, default: int, minimum: int = 0, maximum: int | None = None) -> int:
        raw = self.uri.options.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise self._bad(name, raw, "a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            upper = "" if maximum is None else f" and <= {maximum}"
            raise self._bad(name, raw, f"a whole number >= {minimum}{upper}")
        return value

    def number(self, name: str, default: float | None, minimum_exclusive: float = 0.0) -> float | None:
        raw = self.uri.options.get(name)
        if raw is None:
            return default
        try:
            value = float(Fraction(raw)) if "/" in raw else float(raw)
        except (ValueError, ZeroDivisionError):
            raise self._bad(name, raw, "a number (e.g. 30, 29.97 or 30000/1001)") from None
        if not value > minimum_exclusive or value != value or value == float("inf"):
            raise self._bad(name, raw, f"a number > {minimum_exclusive}")
        return value

    def size(self, name: str, default: tuple[int, int] | None) -> tuple[int, int] | None:
        """``WxH`` -> (width, height), each 2..MAX_FRAME_SIDE."""
        raw = self.uri.options.get(name)
        if raw is None:
            return default
        match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", raw)
        if not match or int(match.group(1)) < 2 or int(match.group(2)) < 2:
            raise self._bad(name, raw, "WIDTHxHEIGHT, e.g. 640x360")
        width, height = int(match.group(1)), int(match.group(2))
        if max(width, height) > MAX_FRAME_SIDE:
            raise self._bad(name, raw, f"WIDTHxHEIGHT with each side at most {MAX_FRAME_SIDE}")
        return width, height

    def flag(self, name: str, default: bool) -> bool:
        raw = self.uri.options.get(name)
        if raw is None:
            return default
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise self._bad(name, raw, "1/0, true/false, yes/no or on/off")
