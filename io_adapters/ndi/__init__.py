"""NDI input and output through ndi-python (``import NDIlib``; bundles libndi 6 for Linux
x86_64 and macOS arm64).

Discovery: NDI finds sources by mDNS, which needs a running mDNS responder (avahi on Linux).
Every finder here also asks 127.0.0.1 directly (``extra_ips``), so sources on the same machine
are found without one; ``?ips=10.0.0.5,10.0.0.6`` adds machines elsewhere. An NDI config file
in ``$NDI_CONFIG_DIR/ndi-config.v1.json`` is read by the SDK itself and is honoured as well.
Asking an address directly is a TCP connection to its port 5960, which every process that sends
NDI listens on (shared port): the kernel hands each connection to ONE of those processes, and that
process lists only its own senders. A finder keeps its connection, so in a process that also sends
(an ``ndi:`` sink) it may only ever see itself. NdiFinder therefore also asks through a fresh probe
finder (a new connection, handed to another process) while it searches, and keeps the long-lived
finder for what mDNS gathers over time.

Output (``ndi:NAME?format=bgra|uyvy|p216&cmap=NAME&layout=depth|rgbd|rgbd-v``) is sent with
``clock_video`` on, so the SDK paces frames to the declared rate. Each frame carries the source
timestamp as its NDI timecode (100 ns units) and an XML metadata string with the source frame
index, timestamp, latency and display range (``formats.frame_metadata_xml``); TouchDesigner's
NDI In TOP shows both in its Info DAT. ``p216`` carries 16-bit depth in the Y plane
(U = V = 32768); NDI compresses it, to about 11 effective bits (see tests/io_adapters/test_ndi.py).

Binding quirks (ndi-python 6.3): ``VideoFrameV2.data`` only accepts uint8 arrays and resets
``xres``, ``yres`` and ``line_stride_in_bytes`` when assigned, so 16-bit buffers go in as a
uint8 view and the sizes are set AFTER ``data``; UYVY must be shaped [H, W, 2].

The SDK is initialised once per process and never torn down here: other senders/receivers
of the same process may still be using it.

Modules: ``options`` (URI options, checked without the library), ``library`` (finding and
loading ndi-python), ``finder`` (discovery, ``rdstream sources``), ``receiver`` (``NdiSource``),
``sender`` (``NdiSink``), ``formats`` (pixel buffers, timecode, frame metadata).
"""
