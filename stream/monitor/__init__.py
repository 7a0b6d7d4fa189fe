"""The monitor page, ``/metrics`` and ``/status.json`` of ``rdstream run --monitor [HOST:]PORT``.

``endpoint`` parses and checks the option before the model loads; ``server.Monitor`` is the
starlette app and its uvicorn server, one more task of the node; ``preview`` makes the page's
pictures, ``metrics`` the Prometheus text, ``guard`` bounds connections; ``static/`` holds the page
and a vendored uPlot (MIT, its licence beside it), so the page loads nothing from outside.
"""
