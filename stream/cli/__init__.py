"""The ``rdstream`` command line: one module per command, and the one place errors become exit codes.

Commands: ``file`` (stream.cli.file, its job in stream.cli.file_job), ``run`` (stream.cli.run, its job in stream.cli.run_job),
``rig`` (stream.cli.rig, its job in stream.cli.rig_job; both run as stream.cli.live_job, a run being a rig of one),
``sources`` (stream.cli.sources), ``dev`` (stream.cli.dev); ``make demo`` runs stream.cli.demo.
The typer app is assembled in stream.cli.app.

Exit codes (docs/method.md, section 11): 0 success, also a live run stopped with Ctrl-C, SIGTERM
or SIGHUP at any moment, start-up included, once or more; 1 runtime failure; 2 bad usage or bad
input; 130 an offline job (``rdstream file``) stopped before it finished. Every one of them ends with at most one line on
stderr. Set RDSTREAM_DEBUG=1 to see tracebacks.
"""

from __future__ import annotations

import os
import signal
import sys
import traceback

from stream.control import early_stop
from stream.stats.console_pipes import guard_console

# typer answers a KeyboardInterrupt inside a command with this exit code and no message; our
# commands return only 0, 1 and 2, so it always means Ctrl-C.
TYPER_INTERRUPTED = 130


class StopRequested(BaseException):
    """Ctrl-C, SIGTERM or SIGHUP arrived before the command had its own handling in place (start-up)."""


def _stop_on_sigterm(signum, frame) -> None:
    early_stop.record(early_stop.signal_name(signum))  # in case a library swallows the exception (stream.control.early_stop)
    raise StopRequested


def _stop_on_sigint(signum, frame) -> None:
    """Python's own Ctrl-C (KeyboardInterrupt), remembered as well (stream.control.early_stop)."""
    early_stop.record("SIGINT")
    raise KeyboardInterrupt


def quiet_libraries() -> None:
    """Library chatter (advisory warnings, telemetry) is noise for our users. Set through the
    environment, which the libraries read when they are first imported, so that ``--help`` and
    usage errors do not wait for them to load; the weight-loading bars are switched off where
    the weights load (pipeline.checkpoint)."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def is_usage_error(err: BaseException) -> bool:
    """Typer's (vendored click) usage errors: bad option values, unknown options, missing ones."""
    return hasattr(err, "format_message") and isinstance(getattr(err, "exit_code", None), int)


def fail(message: str, code: int) -> None:
    """One line and the exit code; with RDSTREAM_DEBUG=1 the traceback of the error being
    handled comes first (every ``rdstream: error:`` line has one to show)."""
    if os.environ.get("RDSTREAM_DEBUG") and sys.exc_info()[0] is not None:
        traceback.print_exc()
    sys.stderr.write(f"rdstream: error: {message}\n")
    sys.exit(code)


def interrupted_exit_code(args: list[str]) -> int:
    """A live node stopped by the user ends normally (0); an offline job stopped early did not (130)."""
    command = next((a for a in args if not a.startswith("-")), "")
    return 130 if command == "file" else 0


def main(argv: list[str] | None = None) -> None:
    """Console entry point: run the app and turn every way of ending into one line and an exit code."""
    raw = list(sys.argv[1:] if argv is None else argv)
    if argv is None:  # the real console (tests calling main() keep their own streams)
        guard_console()  # a closed stdout/stderr pipe must not stop a live node
    # 1. Take charge of SIGTERM and SIGHUP (a closed terminal) before the slow imports: a stop during
    #    start-up is one line too. (SIGINT raises KeyboardInterrupt as Python's own handler does; the
    #    live node installs its own handlers later.) Each is also remembered (stream.control.early_stop). On
    #    Windows, Ctrl-Break (SIGBREAK) stops like SIGTERM (its default kills at once).
    early_stop.clear()
    previous: dict[int, object] = {}
    for name in early_stop.STOP_NAMES:
        signum = getattr(signal, name, None)
        try:
            if name == "SIGINT":  # only where Ctrl-C raises KeyboardInterrupt (a background job ignores it)
                if signal.getsignal(signum) is signal.default_int_handler:
                    previous[signum] = signal.signal(signum, _stop_on_sigint)
            elif signum is not None:
                previous[signum] = signal.signal(signum, _stop_on_sigterm)
        except ValueError:  # not the main thread (tests calling main in a worker)
            break
    try:
        from stream.cli.argv import normalize_argv

        args = normalize_argv(raw)
        quiet_libraries()
        from stream.cli.app import app

        code = app(args=args, prog_name="rdstream", standalone_mode=False)
        if code == TYPER_INTERRUPTED:  # typer turned a Ctrl-C inside a command into this code
            raise KeyboardInterrupt
    except (KeyboardInterrupt, StopRequested):
        code = interrupted_exit_code(raw)
        what = "files already written are complete" if code else "nothing was lost"
        sys.stderr.write(f"rdstream: stopped; {what}\n")
        if argv is None:  # the files are closed; a compile (`file --compile`) may be left running: do not
            _exit_now(code)  # wait for it; and say the code ourselves (see _exit_now)
        sys.exit(code)
    except Exception as err:
        if type(err).__name__ == "Abort":  # click's own Ctrl-C at a prompt
            sys.stderr.write("rdstream: stopped\n")
            sys.exit(interrupted_exit_code(raw))
        if type(err).__name__ == "NoArgsIsHelpError":  # a bare `rdstream` (or `rdstream dev`): its help, as asked
            sys.stdout.write(err.ctx.get_help() + "\n")
            sys.exit(0)
        if "RollingDepthError" in {c.__name__ for c in type(err).__mro__}:
            fail(str(err), err.exit_code)
        if is_usage_error(err):
            fail(usage_message(err, raw), 2)
        if os.environ.get("RDSTREAM_DEBUG"):
            raise
        fail(f"internal error: {type(err).__name__}: {err} (set RDSTREAM_DEBUG=1 for the traceback)", 1)
    finally:
        for signum, handler in previous.items():
            if signal.getsignal(signum) in (_stop_on_sigterm, _stop_on_sigint):  # not if a stopped run now ignores it
                signal.signal(signum, handler)
    code = code if isinstance(code, int) else 0
    if argv is None and early_stop.seen():
        _exit_now(code)
    sys.exit(code)


def _exit_now(code: int) -> None:
    """Exit with ``code`` now, the outputs being closed. After a Ctrl-C, Python itself may end the
    process by SIGINT whatever the code (-2 to the caller, seen under load): it does so when the
    KeyboardInterrupt went through a library's embedded Python call, even one we then caught."""
    from stream.control.stop_signals import end_without_waiting

    end_without_waiting(code)


def usage_message(err: BaseException, args: list[str]) -> str:
    """click's message on one line, e.g. "Invalid value for '--res': 'abc' is not a valid integer.",
    and where to read more."""
    message = " ".join(err.format_message().split())
    param = getattr(err, "param", None)
    for name in getattr(param, "opts", None) or []:
        given = [args[i + 1] for i, a in enumerate(args[:-1]) if a == name]
        given += [a.split("=", 1)[1] for a in args if a.startswith(name + "=")]
        if given:
            message = message.replace(f"'{name}':", f"'{name}' ({given[-1]!r}):", 1)
            break
    command = next((a for a in args if not a.startswith("-")), None)
    where = f"rdstream {command} --help" if command in {"file", "run", "rig", "sources", "dev"} else "rdstream --help"
    return f"{message} (see {where})"


if __name__ == "__main__":
    main()
