"""docs/touchdesigner/build_network.py runs only inside TouchDesigner; here: it compiles, it names
only operators and parameters that TouchDesigner's documentation lists (sources below), its
variants receive exactly the command lines they name (the README's first one by default), and its
callbacks, run with stand-ins for TouchDesigner's objects, send what rdstream accepts and show
what rdstream answers."""

import ast
import shlex
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from stream.stats.stream_stats import LastFrame

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "docs" / "touchdesigner" / "build_network.py"
USER_GUIDE = "https://docs.derivative.ca/"

# Operator type -> (its documented parameters that the script may set, documentation page).
DOCUMENTED = {
    "ndiinTOP": ({"name", "active", "extraips", "inputpixelformat"}, USER_GUIDE + "NDI_In_TOP"),
    "syphonspoutinTOP": ({"sendername"}, USER_GUIDE + "Syphon_Spout_In_TOP"),
    "cropTOP": ({"cropleft", "cropright", "cropbottom", "croptop"}, USER_GUIDE + "Crop_TOP"),
    "glslTOP": ({"pixeldat", "format"}, USER_GUIDE + "GLSL_TOP"),  # format: its Common page's Pixel Format
    "infoDAT": ({"op", "passive"}, USER_GUIDE + "Info_DAT"),
    "textDAT": (set(), USER_GUIDE + "Text_DAT"),
    "oscoutDAT": ({"address", "port", "protocol", "active"}, USER_GUIDE + "OSC_Out_DAT"),
    "oscinDAT": ({"port", "active", "callbacks"}, USER_GUIDE + "OSC_In_DAT"),
    "parameterexecuteDAT": ({"op", "pars", "valuechange", "onpulse", "active"}, USER_GUIDE + "Parameter_Execute_DAT"),
    "baseCOMP": (set(), USER_GUIDE + "Base_COMP"),
}


def _tree():
    return ast.parse(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT))


def _definitions() -> dict:
    """The script's constants and functions, without its last line (build(), which needs TouchDesigner)."""
    tree = _tree()
    tree.body = [node for node in tree.body if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Call)
                 or getattr(node.value.func, "id", "") != "build"]
    namespace: dict = {}
    exec(compile(tree, str(SCRIPT), "exec"), namespace)
    return namespace


def _created(tree):
    """(variable, operator type) of every `x = something.create(TYPE, name)`."""
    made = []
    for node in ast.walk(tree):
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) and isinstance(node.value.func, ast.Attribute)
                and node.value.func.attr == "create" and isinstance(node.value.args[0], ast.Name)):
            made.append((node.targets[0].id, node.value.args[0].id))
    return made


def _parameters_set(tree):
    """(variable, parameter) of every `_set(variable, "parameter", value)` and `_set_menu(...)`."""
    return [(node.args[0].id, node.args[1].value) for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("_set", "_set_menu")]


def test_the_script_compiles_and_builds_each_part_the_docs_promise():
    compile(SCRIPT.read_text(encoding="utf-8"), str(SCRIPT), "exec")
    types = {kind for _, kind in _created(_tree())}
    assert {"ndiinTOP", "syphonspoutinTOP", "cropTOP", "glslTOP", "infoDAT", "oscoutDAT", "oscinDAT", "baseCOMP"} <= types


def test_only_documented_operators_and_parameters():
    tree = _tree()
    created = _created(tree)
    assert {kind for _, kind in created} <= set(DOCUMENTED), "operator type without a documentation entry"
    kinds = {}
    for variable, kind in created:
        kinds.setdefault(variable, set()).add(kind)
    for variable, parameter in _parameters_set(tree):
        allowed = set().union(*(DOCUMENTED[kind][0] for kind in kinds[variable]))
        assert parameter in allowed, f"{variable}.par.{parameter} is not a documented parameter of {kinds[variable]}"


def _sink_and_ports(command: str) -> tuple[str, int, int]:
    words = shlex.split(command)
    assert words[:2] == ["rdstream", "run"]
    option = {words[i]: words[i + 1] for i in range(2, len(words) - 1) if words[i].startswith("--")}
    return option["--sink"], int(option["--osc"]), int(option["--osc-status"])


def test_each_variant_receives_what_its_command_sends_and_the_default_is_the_readmes_first_command():
    from io_adapters.ndi.options import ndi_sink_options
    from io_adapters.spout_io import spout_sink_options
    from io_adapters.uri import parse_uri

    script = _definitions()
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_run = next(line.strip() for line in readme.splitlines() if line.strip().startswith("rdstream run "))
    assert script["VARIANT"] == "depth" and script["VARIANTS"]["depth"][1] == first_run
    for name, (changes, command) in script["VARIANTS"].items():
        settings = dict(script["SETTINGS"], **changes)
        sink, osc, osc_status = _sink_and_ports(command)
        uri = parse_uri(sink)
        assert uri.scheme == ("ndi" if settings["input"] == "ndi" else "spout"), name
        (ndi_sink_options if uri.scheme == "ndi" else spout_sink_options)(uri)  # the sink's own option checks
        assert (uri.target, uri.options.get("format"), uri.options.get("layout", "depth"), uri.options.get("cmap")) == \
            (settings["name"], settings["format"], settings["layout"], settings["cmap"]), name
        assert (osc, osc_status) == (settings["osc_port"], settings["osc_status_port"]), name
        assert command in readme or command in (ROOT / "docs" / "live_io.md").read_text(encoding="utf-8"), name
    depth = dict(script["SETTINGS"], **script["VARIANTS"]["depth"][0])
    assert depth["sender_ip"] == "127.0.0.1"  # Extra Search IPs for the same machine


def test_unpack_shader_rebuilds_the_16_bits_rdstream_packs():
    """The GLSL TOP's arithmetic, done in numpy on what the packed16 sinks send."""
    from io_adapters.encodings import pack16_bgra, to_uint16

    shader = _definitions()["UNPACK_SHADER"]
    assert "high * 256.0 + low" in shader and "packed.r" in shader and "packed.g" in shader
    depth = np.linspace(0.0, 1.0, 4097, dtype=np.float32)[None, :]
    bgra = pack16_bgra(depth).astype(np.float64) / 255.0  # what the GLSL TOP samples, in [0, 1]
    high, low = np.floor(bgra[..., 2] * 255.0 + 0.5), np.floor(bgra[..., 1] * 255.0 + 0.5)  # R, G
    assert np.array_equal((high * 256 + low).astype(np.uint16), to_uint16(depth))


def test_near_far_labels_match_the_colour_maps():
    from io_adapters.encodings import colormap_lut

    anchors = {"white": (1, 1, 1), "black": (0, 0, 0), "dark red": (0.55, 0.02, 0.1), "dark purple": (0.2, 0.05, 0.3),
               "blue-violet": (0.37, 0.31, 0.64), "pale yellow": (0.99, 1.0, 0.7), "yellow": (0.97, 0.93, 0.14),
               "purple": (0.27, 0.0, 0.33), "dark blue": (0.05, 0.03, 0.53)}
    script = _definitions()
    for cmap, (near, far) in script["NEAR_FAR_COLOURS"].items():
        lut = colormap_lut(cmap or "Greys_r") / 255.0  # None: the grey of p216 and of sinks without cmap
        for word, colour in ((near, lut[255]), (far, lut[0])):
            assert np.abs(colour - anchors[word]).max() < 0.2, (cmap, word, colour)
    assert script["near_far_labels"](None) == ("Near (white)", "Far (black)")
    assert script["near_far_labels"]("turbo") == ("Near (dark red)", "Far (dark purple)")


def _value(v):
    return SimpleNamespace(val=v, eval=lambda: v)


class _Par(SimpleNamespace):
    """A custom parameter: .val is what .eval() returns, as in TouchDesigner."""

    def eval(self):
        return self.val


def _panel(**values):
    return SimpleNamespace(par=SimpleNamespace(**{name: _Par(val=v, label=name) for name, v in values.items()}))


def test_control_panel_sends_only_addresses_rdstream_understands():
    from stream.control.osc_commands import OSC_PREFIX

    text = SCRIPT.read_text(encoding="utf-8")
    script = _definitions()
    callbacks = ast.parse(script["CONTROL_CALLBACKS"])
    sent = {node.value for tree in (_tree(), callbacks) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(OSC_PREFIX)}
    assert sent == {"/rdstream/pause", "/rdstream/stop", "/rdstream/normalize/running",
                    "/rdstream/normalize/fixed", "/rdstream/cmap"}, sent
    assert "exec(open(" in text  # the docstring says how to run it in the Textport


def test_each_message_the_panel_sends_is_accepted_by_rdstream():
    """Run the panel's callbacks (the DAT's whole text) with stand-ins for TouchDesigner's objects
    and hand every message they send to rdstream's own OSC parser."""
    from stream.control.osc_commands import parse_command

    script = _definitions()
    sent = []
    osc_out = SimpleNamespace(sendOSC=lambda address, args: sent.append((address, list(args))))
    namespace = {"op": lambda name: osc_out}
    exec(compile(script["LABELS_SOURCE"] + script["CONTROL_CALLBACKS"], "rdstream_callbacks", "exec"), namespace)
    panel = _panel(Near=2.0, Far=0.5, Cmap="turbo")
    namespace["onValueChange"](SimpleNamespace(name="Pause", eval=lambda: True, owner=panel), False)
    for name in ("Stop", "Running", "Fixed", "Sendcmap"):
        namespace["onPulse"](SimpleNamespace(name=name, owner=panel))
    assert [address for address, _ in sent] == ["/rdstream/pause", "/rdstream/stop", "/rdstream/normalize/running",
                                                "/rdstream/normalize/fixed", "/rdstream/cmap"]
    for address, args in sent:
        assert parse_command(address, args) is not None, (address, args)
    assert (panel.par.Near.label, panel.par.Far.label) == ("Near (dark red)", "Far (dark purple)")


def test_status_callbacks_fill_near_far_once_and_show_acks_and_errors():
    """What rdstream's own OSC sender sends on --osc-status, through the OSC In DAT's callbacks."""
    from stream.control.osc_commands import parse_command
    from stream.control.osc_control import OscControl

    received = []
    control = OscControl(None, None, report=lambda line: None)
    control._client = SimpleNamespace(send=lambda message: received.append((message.address, list(message.params))))

    def stats(near, far):
        # The real LastFrame: a run without --fill has no keyframe flag or depth age.
        frame = LastFrame(index=0, timestamp=0.0, latency_ms=40.0, near=near, far=far)
        return SimpleNamespace(frame=frame, latency_p50_ms=40.0, input_fps=30.0, output_fps=29.5, dropped=1)

    panel = _panel(Near=0.0, Far=0.0, Currentrange="", Lastanswer="")
    namespace = {"op": lambda path: panel}
    exec(compile("PANEL = '/project1/rdstream_control'\n" + _definitions()["STATUS_CALLBACKS"], "status_callbacks", "exec"),
         namespace)

    def deliver():
        for address, args in received:
            namespace["onReceiveOSC"](None, 0, "", b"", 0.0, address, args, None)
        received.clear()

    control.send_status(stats(None, None))  # before the first depth frame: NaN
    deliver()
    assert (panel.par.Near.val, panel.par.Far.val, panel.par.Currentrange.val) == (0.0, 0.0, "no depth frame yet")
    control.send_status(stats(1.25, -0.5))
    deliver()
    assert (panel.par.Near.val, panel.par.Far.val) == (pytest.approx(1.25), pytest.approx(-0.5))
    assert panel.par.Currentrange.val == "1.25 .. -0.5"
    panel.par.Near.val = 2.0  # the user's edit stays
    control.send_status(stats(1.0, 0.0))
    deliver()
    assert (panel.par.Near.val, panel.par.Currentrange.val) == (2.0, "1 .. 0")
    control.acknowledge(parse_command("/rdstream/cmap", ["turbo"]), 120)
    deliver()
    assert panel.par.Lastanswer.val == "applied /rdstream/cmap 120 turbo"
    received.append(("/rdstream/error", ["/rdstream/normalize/fixed", "NEAR must be larger than FAR"]))
    deliver()
    assert panel.par.Lastanswer.val == "refused /rdstream/normalize/fixed NEAR must be larger than FAR"
