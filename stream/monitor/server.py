"""The monitor's HTTP side: a starlette app served by uvicorn as one more task of the node's loop.

Routes (``T``: the token, as header ``X-Rdstream-Token: T`` or ``Authorization: Bearer T``):

* ``GET /`` and ``/static/...``: the page and its files (no data in them; open to all).
* ``GET /status.json``: the newest ``--stats-json`` line (a rig's: a list, one line per stream with
  its ``stream`` name; ``?stream=NAME``: that one). ``GET /live.json``: the same plus the settings,
  warnings, acknowledgements and control state (``?history=1``: the last minutes too; a rig's: of
  ``?stream=NAME``, the first stream without, and the ``streams`` names for the page's picker).
* ``GET /preview.jpg``: the newest input and depth side by side (``preview.PreviewTap``; ``?stream=NAME``).
* ``GET /metrics``: Prometheus text format (``metrics.NodeCollector``; a rig's series carry ``stream``).
* ``POST /control``: ``{"command": "pause", "args": [1]}``, the OSC commands by their address
  without ``/rdstream/`` (``stream.control.osc_commands.parse_command`` checks them); needs T always.
  ``"stream": NAME`` sends it to that stream of a rig (without: to every stream); a stop stops the run.

Reads need T too when the monitor listens beyond loopback. The web layer only reads what the node
keeps and hands commands to ``StreamNode.command``; it never waits on the stream and the stream
never waits on it (see ``guard`` for the limits on connections).
"""

from __future__ import annotations

import hmac
import json
import logging
from collections import deque
from collections.abc import Callable
from contextlib import nullcontext, suppress
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from stream.stages.messages import NodeCommand
from stream.monitor.endpoint import MonitorEndpoint, listen_socket
from stream.monitor.guard import MAX_CONNECTIONS, guarded_protocol
from stream.monitor.metrics import CONTENT_TYPE, metrics_registry, metrics_text, rig_metrics_registry
from stream.monitor.preview import PreviewTap
from stream.control.osc_commands import OSC_PREFIX, parse_command
from stream.control.packet_budget import PacketBudget
from stream.stats.stream_stats import NodeStats

STATIC = Path(__file__).resolve().parent / "static"
# The charts' span: one sample a second, five minutes.
HISTORY_SAMPLES = 300
KEPT_WARNINGS = 50
KEPT_ACKS = 20
MAX_BODY_BYTES = 4096
MAX_HEADER_BYTES = 16 * 1024
MAX_TARGET_BYTES = 2048
# A person clicks a few times a second; a script has no reason to send more.
CONTROLS_PER_S = 20
SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob:; style-src 'self' 'unsafe-inline'; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


class _SecurityHeaders:
    """Pure ASGI middleware: the headers above on every response (the page loads nothing else), and
    oversized requests refused (h11 bounds headers only while they arrive in pieces)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > MAX_HEADER_BYTES or \
                len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"") > MAX_TARGET_BYTES:
            return await _refuse(431, "request headers or address too large")(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class _NodeServer(uvicorn.Server):
    """uvicorn without its own signal handlers: Ctrl-C and SIGTERM belong to the node."""

    def capture_signals(self):
        return nullcontext()


class StreamView:
    """One stream as the page sees it: its newest stats and their history, the commands applied to
    it (``acknowledge``), its preview and its node (set by ``Monitor.serve``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.preview = PreviewTap()
        self.history: deque[dict] = deque(maxlen=HISTORY_SAMPLES)
        self.latest: NodeStats | None = None
        self.acks: deque[dict] = deque(maxlen=KEPT_ACKS)
        self._ack_count = 0
        self.node = None

    def record_stats(self, stats: NodeStats) -> None:
        self.latest = stats
        self.history.append(json.loads(stats.as_json()))

    def acknowledge(self, command: NodeCommand, source_index: int | None) -> None:
        self._ack_count += 1
        self.acks.append({"n": self._ack_count, "command": command.kind, "args": list(command.args),
                          "frame": source_index})


class Monitor:
    """What the page shows and where its commands go; one per run (a rig's streams share it).

    settings: the run's start lines. streams: a rig's stream names (None: one stream, ``rdstream
    run``: the routes answer as they always did). The run feeds it: ``record_stats`` (each stats
    sample), ``warn`` (each warning line), ``acknowledge`` (``LiveControls.on_applied``); the display
    stage feeds its stream's ``preview``. ``serve(*nodes)`` runs the server until cancelled.
    """

    def __init__(self, endpoint: MonitorEndpoint, settings: str = "",
                 announce: Callable[[str], None] | None = None, streams: list[str] | None = None) -> None:
        """announce(line): told once, when listening, the page's address (with its token)."""
        self.endpoint = endpoint
        self.settings = settings
        self.announce = announce
        self.named = streams is not None
        self.views = {name: StreamView(name) for name in (streams or [""])}
        self.preview = next(iter(self.views.values())).preview  # the one stream's (``rdstream run``)
        self.warnings: deque[str] = deque(maxlen=KEPT_WARNINGS)
        self.budget = PacketBudget(rate=CONTROLS_PER_S, burst=CONTROLS_PER_S)
        self.port: int | None = None

    # -- fed by the run ---------------------------------------------------------------------------
    def record_stats(self, stats: NodeStats, stream: str = "") -> None:
        self.views[stream].record_stats(stats)

    def warn(self, line: str) -> None:
        self.warnings.append(line)

    def acknowledge(self, command: NodeCommand, source_index: int | None, stream: str = "") -> None:
        self.views[stream].acknowledge(command, source_index)

    @property
    def url(self) -> str:
        return self.endpoint.url(self.port)

    # -- HTTP -------------------------------------------------------------------------------------
    def app(self) -> Starlette:
        routes = [
            Route("/", self._page),
            Route("/status.json", self._status),
            Route("/live.json", self._live),
            Route("/preview.jpg", self._preview),
            Route("/metrics", self._metrics),
            Route("/control", self._control, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ]
        middleware = [Middleware(_SecurityHeaders)]
        if self.endpoint.loopback:  # a page on another site renamed to 127.0.0.1 (DNS rebinding) gets nothing
            middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_NAMES))
        return Starlette(routes=routes, middleware=middleware)

    def _token_ok(self, request: Request) -> bool:
        given = request.headers.get("x-rdstream-token", "")
        bearer = request.headers.get("authorization", "")
        if not given and bearer[:7].lower() == "bearer ":
            given = bearer[7:].strip()
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.endpoint.token.encode())

    def _read_refused(self, request: Request) -> Response | None:
        if self.endpoint.loopback or self._token_ok(request):
            return None
        return _refuse(401, "this monitor needs its token (open the address the run printed)")

    async def _page(self, request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    def _view(self, request: Request) -> StreamView | None:
        """The stream ``?stream=NAME`` asks for (the first without one), or None for an unknown name."""
        name = request.query_params.get("stream")
        return next(iter(self.views.values())) if name is None else self.views.get(name)

    async def _status(self, request: Request) -> Response:
        """The newest stats line; a rig's: a list of every stream's (each with its ``stream`` name), or
        ``?stream=NAME``'s alone."""
        if refused := self._read_refused(request):
            return refused
        views = list(self.views.values()) if self.named and "stream" not in request.query_params else [self._view(request)]
        if None in views:
            return _refuse(404, f"no stream {request.query_params['stream'][:40]!r}")
        lines = [{"stream": view.name, **json.loads(view.latest.as_json())} if self.named else view.latest.as_json()
                 for view in views if view.latest is not None]
        if not lines:
            return _refuse(503, "no stats yet (the first sample comes after a second)", retry=True)
        if not self.named:
            return Response(lines[0], media_type="application/json")
        return JSONResponse(lines if "stream" not in request.query_params else lines[0])

    async def _live(self, request: Request) -> Response:
        if refused := self._read_refused(request):
            return refused
        if (view := self._view(request)) is None:
            return _refuse(404, f"no stream {request.query_params['stream'][:40]!r}")
        body = {"stats": json.loads(view.latest.as_json()) if view.latest else None, "settings": self.settings,
                "warnings": list(self.warnings), "acks": list(view.acks), "state": control_state(view.node)}
        if self.named:  # the page's stream picker
            body["streams"] = list(self.views)
        if request.query_params.get("history"):
            body["history"] = list(view.history)
        return JSONResponse(body)

    async def _preview(self, request: Request) -> Response:
        if refused := self._read_refused(request):
            return refused
        if (view := self._view(request)) is None:
            return _refuse(404, f"no stream {request.query_params['stream'][:40]!r}")
        preview = await view.preview.latest()
        if preview is None:
            return _refuse(503, "no frame yet", retry=True)
        return Response(preview.jpeg, media_type="image/jpeg", headers={"x-rdstream-frame": str(preview.index)})

    async def _metrics(self, request: Request) -> Response:
        if refused := self._read_refused(request):
            return refused
        return Response(metrics_text(self._registry), media_type=CONTENT_TYPE)

    async def _control(self, request: Request) -> Response:
        if not self._token_ok(request):
            return _refuse(403, "wrong or missing token")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _refuse(415, "send JSON (content-type: application/json)")
        declared = request.headers.get("content-length", "")
        if declared and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
            return _refuse(413, f"a command is at most {MAX_BODY_BYTES} bytes")
        if not self.budget.take():
            return _refuse(429, f"more than {CONTROLS_PER_S} commands a second", retry=True)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return _refuse(413, f"a command is at most {MAX_BODY_BYTES} bytes")
        try:
            data = json.loads(body)
            kind, args, stream = data["command"], data.get("args", []), data.get("stream")
            if not isinstance(kind, str) or not isinstance(args, list) or not isinstance(stream, (str, type(None))):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return _refuse(400, 'expected {"command": NAME, "args": [...]}, e.g. {"command": "pause", "args": [1]}')
        try:
            command = parse_command(OSC_PREFIX + kind, args)
        except ValueError as reason:
            return _refuse(400, f"{kind[:40]}: {reason}")
        if command is None:  # a trigger sent with 0: nothing to do, as over OSC
            return JSONResponse({"accepted": None})
        if stream is not None and stream not in self.views:
            return _refuse(400, f"no stream {stream[:40]!r}")
        # a stop ends the run (every stream of a rig drains); the rest go to the stream named, or to all
        views = [self.views[stream]] if stream is not None and kind != "stop" else list(self.views.values())
        if any(view.node is None for view in views):
            return _refuse(503, "the node is not running yet", retry=True)
        client = request.client.host if request.client else "an unknown address"
        command = command.from_origin(f"monitor page from {client}")
        for view in views:
            view.node.command(command)
        # "by": the page that stops a run can say who stopped it even if the run ends before its next poll
        return JSONResponse({"accepted": command.kind, "args": list(command.args), "by": command.origin},
                            status_code=202)

    # -- serving ----------------------------------------------------------------------------------
    async def serve(self, *nodes, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        """Listen (a busy port raises BadInputError), then serve until cancelled; ``nodes``: one per
        stream, in the order of ``streams``."""
        sock = listen_socket(self.endpoint)
        self.port = sock.getsockname()[1]
        for view, node in zip(self.views.values(), nodes):
            view.node = node
        if self.named:
            self._registry = rig_metrics_registry([(view.name, view.node, lambda view=view: view.latest)
                                                   for view in self.views.values()])
        else:
            view = next(iter(self.views.values()))
            self._registry = metrics_registry(view.node, lambda: view.latest)
        _quiet_uvicorn()
        config = uvicorn.Config(
            self.app(), http=guarded_protocol(), ws="none", lifespan="off", interface="asgi3", log_config=None,
            access_log=False, proxy_headers=False, server_header=False, date_header=False,
            limit_concurrency=MAX_CONNECTIONS, h11_max_incomplete_event_size=MAX_HEADER_BYTES,
            timeout_keep_alive=5, backlog=MAX_CONNECTIONS)
        server = _NodeServer(config)
        if self.announce is not None:
            self.announce(f"monitor page: {self.url} (also /metrics and /status.json"
                          + ("" if self.endpoint.loopback else ", with the token") + ")")
        task_status.started()
        try:
            await server.serve(sockets=[sock])
        except Exception as err:  # noqa: BLE001 - whatever breaks the monitor must not end the run
            if self.announce is not None:
                self.announce(f"monitor stopped ({type(err).__name__}: {err}); the stream goes on without it")
        finally:  # cancelled with the node: stop listening and drop every connection now
            for listener in getattr(server, "servers", []):
                listener.close()
            for connection in list(server.server_state.connections):
                connection.transport.abort()
            with suppress(OSError):
                sock.close()


def control_state(node) -> dict | None:
    """What the page's controls show: the state in force, so a page opened later starts from it.

    ``{"paused": bool, "cmap": NAME or None (each sink's own), "normalize": "running" | "fixed" |
    "window", "near"/"far": the display range in force (None before the first frame),
    "window_frames": N (window only), "stopped_by": who stopped the run, or None}``.
    """
    display = node.display if node is not None else None
    if display is None:
        return None
    normalizer = display.normalizer
    current = normalizer.current_range
    state = {"paused": display.paused, "cmap": display.cmap,
             "normalize": type(normalizer).__name__.removesuffix("RangeNormalizer").lower(),
             "near": None if current is None else current.near, "far": None if current is None else current.far,
             "stopped_by": node.stopped_by}
    frames = getattr(normalizer, "frames", None)
    if frames is not None:
        state["window_frames"] = frames
    return state


def _refuse(status: int, reason: str, retry: bool = False) -> Response:
    headers = {"retry-after": "1"} if retry else None
    return JSONResponse({"error": reason}, status_code=status, headers=headers)


def _quiet_uvicorn() -> None:
    """uvicorn logs each malformed request; under a flood that would be thousands of lines.
    Only its errors (a bug in a handler) reach stderr, as one line each."""
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.ERROR)
        logger.propagate = False
        if not logger.handlers:
            handler = logging.StreamHandler()
            handler.setFormatter(logging.Formatter("rdstream: monitor: %(message)s"))
            logger.addHandler(handler)

