"""Errors that reach the user as one clear line (never a traceback).

The command line maps each class to an exit code (docs/method.md, section 11):
``BadInputError`` -> 2 (bad usage or bad input), ``RuntimeFailure`` -> 1.
Messages name the thing that is wrong (a path, an option, a URI) and what is allowed.
"""


class RollingDepthError(Exception):
    """Base class of every error meant for the user; ``str(err)`` is the one-line message."""

    exit_code = 1


class BadInputError(RollingDepthError):
    """The user gave something unusable: a missing file, a bad option value, an unknown URI."""

    exit_code = 2


class RuntimeFailure(RollingDepthError):
    """Something failed while running (a device error, a sink that broke)."""

    exit_code = 1
